package config

import (
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with a configuration (or, in Config.Warnings,
// one thing questionable), at its YAML path such as brands[0].identity.issuer.
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Problems is every error found in a configuration, in the order they appear
// in the file, so that an operator fixes them all in one pass. Load and Parse
// return it as their error; get it back with errors.As.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// collector gathers problems and warnings from decoding, secret resolution
// and validation.
type collector struct {
	errs  []Problem
	warns []Problem
}

func (c *collector) errorf(path, format string, args ...any) {
	c.errs = append(c.errs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

func (c *collector) warnf(path, format string, args ...any) {
	c.warns = append(c.warns, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// dropCovered removes from later the problems at or under a path that already
// has one in earlier: a value that failed to decode or resolve would
// otherwise also be reported as missing or malformed.
func dropCovered(earlier, later []Problem) []Problem {
	return slices.DeleteFunc(later, func(p Problem) bool {
		return slices.ContainsFunc(earlier, func(e Problem) bool { return within(p.Path, e.Path) })
	})
}

// within reports whether path is base or lies under it.
func within(path, base string) bool {
	if base == "" || path == base {
		return true
	}
	return strings.HasPrefix(path, base) && (path[len(base)] == '.' || path[len(base)] == '[')
}

// span is where a path is in the file: the line of its key (or list
// element) to the last line of its value.
type span struct{ start, end int }

// sortByPosition orders problems as they appear in the file. A path that is
// in the file sorts at its line; a missing one (a required key) at the end
// of the nearest block that is there, where it would be added. Problems at
// the same place keep their order.
func sortByPosition(ps []Problem, spans map[string]span) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		la, ta := position(a.Path, spans)
		lb, tb := position(b.Path, spans)
		if la != lb {
			return la - lb
		}
		return ta - tb
	})
}

// position is a line and, to sort a missing key after what is on that
// line, a tiebreak.
func position(path string, spans map[string]span) (line, tie int) {
	if s, ok := spans[path]; ok {
		return s.start, 0
	}
	for path != "" {
		path = path[:max(strings.LastIndexAny(path, ".["), 0)]
		if s, ok := spans[path]; ok {
			return s.end, 1
		}
	}
	return 0, 1
}

// join and index build YAML paths.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string {
	return fmt.Sprintf("%s[%d]", path, i)
}

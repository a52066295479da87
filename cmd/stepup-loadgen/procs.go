package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
)

// proc is a server subprocess (the bridge, or the baseline).
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProc(name string, cmd *exec.Cmd, log io.Writer) (*proc, error) {
	cmd.Stdout = log
	cmd.Stderr = log
	// Never outlive the load generator.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop asks for a graceful shutdown, then kills after a while.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(25 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// waitHTTP polls url until it answers 200 (or the process dies).
func waitHTTP(ctx context.Context, p *proc, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready at %s after %s: %s", p.name, url, timeout, last)
}

// buildBridge builds cmd/stepup-bridge from the module in the working
// directory into dir.
func buildBridge(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "stepup-bridge")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/stepup-bridge")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/stepup-bridge (run from the repository root, or pass --bridge-bin): %w", err)
	}
	return out, nil
}

// baselineOK is what the baseline answers: the same shape and size as
// the bridge's answer to one event.
var baselineOK = []byte(`{"duplicates":0,"events":1,"status":"ok"}`)

// serveBaseline is the ceiling of the HTTP stack: gin in release mode, no
// middleware, the bridge's route, a handler that reads the body (under the
// same size limit) and answers 200; the http.Server has the bridge's
// default timeouts.
func serveBaseline(ctx context.Context, addr string) error {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.POST("/webhooks/:brand/:platform", func(c *gin.Context) {
		if _, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, 1<<20)); err != nil {
			c.AbortWithStatus(http.StatusBadRequest)
			return
		}
		c.Data(http.StatusOK, "application/json; charset=utf-8", baselineOK)
	})
	r.GET("/healthz", func(c *gin.Context) { c.Status(http.StatusOK) })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if !ln.Addr().(*net.TCPAddr).IP.IsLoopback() {
		ln.Close()
		return errors.New("baseline: loopback addresses only")
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second, WriteTimeout: 15 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// rssSampler reads a process's resident set size once a second.
type rssSampler struct {
	pid     int
	mu      sync.Mutex
	samples []rssSample
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

type rssSample struct {
	at  time.Time
	rss int64 // bytes
}

type rssSummary struct {
	StartMB float64 `json:"start_mb"`
	EndMB   float64 `json:"end_mb"`
	MaxMB   float64 `json:"max_mb"`
	// SlopeMBPerMin is the least-squares trend over the second half of
	// the samples (after warm-up growth): ~0 means flat.
	SlopeMBPerMin float64 `json:"slope_second_half_mb_per_min"`
	Samples       int     `json:"samples"`
}

func sampleRSS(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if v, err := readRSS(pid); err == nil {
				s.mu.Lock()
				s.samples = append(s.samples, rssSample{time.Now(), v})
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// window returns the summary of the samples taken between from and to.
func (s *rssSampler) window(from, to time.Time) *rssSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	var in []rssSample
	for _, x := range s.samples {
		if !x.at.Before(from) && !x.at.After(to) {
			in = append(in, x)
		}
	}
	if len(in) == 0 {
		return nil
	}
	mb := func(b int64) float64 { return float64(b) / (1 << 20) }
	r := &rssSummary{StartMB: mb(in[0].rss), EndMB: mb(in[len(in)-1].rss), Samples: len(in)}
	for _, x := range in {
		r.MaxMB = max(r.MaxMB, mb(x.rss))
	}
	half := in[len(in)/2:]
	if len(half) >= 3 {
		var sx, sy, sxx, sxy float64
		t0 := half[0].at
		for _, x := range half {
			tx, ty := x.at.Sub(t0).Minutes(), mb(x.rss)
			sx, sy, sxx, sxy = sx+tx, sy+ty, sxx+tx*tx, sxy+tx*ty
		}
		n := float64(len(half))
		if d := n*sxx - sx*sx; d > 0 {
			r.SlopeMBPerMin = (n*sxy - sx*sy) / d
		}
	}
	return r
}

func (s *rssSampler) close() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

func readRSS(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// freePort finds a free loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cpuSeconds is the user+system CPU time a process has used (/proc/PID/stat,
// clock ticks of 1/100 s).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields start after the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// stealSeconds is the CPU time the hypervisor gave other guests while this
// machine's vCPUs wanted to run (/proc/stat, all CPUs, clock ticks of
// 1/100 s). On a shared host it is why the same run gets slower.
func stealSeconds() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	st, _ := strconv.ParseFloat(f[8], 64)
	return st / 100
}

// stealKey names the host's steal time among the processes of a phase.
const stealKey = "steal (host)"

// cpuMeter measures the cores a set of processes used over a phase, and
// the cores the host took away (steal).
type cpuMeter struct {
	pids  map[string]int
	start map[string]float64
	steal float64
	t0    time.Time
}

func startCPU(pids map[string]int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: map[string]float64{}, steal: stealSeconds(), t0: time.Now()}
	for k, p := range pids {
		m.start[k] = cpuSeconds(p)
	}
	return m
}

// cores returns, per process, CPU seconds per wall second since start.
func (m *cpuMeter) cores() map[string]float64 {
	el := time.Since(m.t0).Seconds()
	out := map[string]float64{}
	for k, p := range m.pids {
		if p > 0 && el > 0 {
			out[k] = (cpuSeconds(p) - m.start[k]) / el
		}
	}
	if el > 0 {
		out[stealKey] = (stealSeconds() - m.steal) / el
	}
	return out
}

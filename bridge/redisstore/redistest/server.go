package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a throwaway redis-server process on a loopback port, with no
// persistence, that a test can stop and start again on the same port.
type Server struct {
	Addr string
	Port int
	dir  string
	// sentinel: the process is a Sentinel started from a config file
	// (Sentinel rewrites it, so it lives in the server's directory).
	sentinel string
	extra    []string // more redis-server arguments (e.g. --replicaof)
	cmd      *exec.Cmd
	done     chan struct{}
	t        testing.TB
}

// StartServer starts redis-server on a free loopback port and stops it when
// the test ends. It skips under -short (starting processes is the slow
// tier) and fails if redis-server is not installed (deploy/test.sh installs
// it).
func StartServer(t testing.TB) *Server {
	t.Helper()
	return startServer(t, &Server{dir: t.TempDir(), t: t})
}

// StartServerWith is StartServer with more redis-server arguments (e.g.
// "--min-replicas-to-write", "1").
func StartServerWith(t testing.TB, args ...string) *Server {
	t.Helper()
	return startServer(t, &Server{dir: t.TempDir(), t: t, extra: args})
}

// StartReplica starts a redis-server replicating master and waits until
// the initial sync is done.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	s := startServer(t, &Server{dir: t.TempDir(), t: t, extra: []string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}})
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := c.Info(context.Background(), "replication").Result()
		if err == nil && strings.Contains(info, "master_link_status:up") {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica on %s did not sync with %s: %v", s.Addr, master.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartSentinel starts a Sentinel (redis-server --sentinel) that monitors
// master under the name masterName, and waits until it knows the master.
// Clients reach the master through it (config: addrs = the Sentinel,
// master_name).
func StartSentinel(t testing.TB, master *Server, masterName string) *Server {
	t.Helper()
	s := startServer(t, &Server{dir: t.TempDir(), t: t, sentinel: fmt.Sprintf(
		"sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %s 1000\nsentinel failover-timeout %s 2000\n",
		masterName, master.Port, masterName, masterName)})
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr})
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		addr, err := c.GetMasterAddrByName(context.Background(), masterName).Result()
		if err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(master.Port) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("sentinel on %s does not know master %s: %v %v", s.Addr, masterName, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startServer(t testing.TB, s *Server) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a redis-server process: skipped with -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not on PATH (bash deploy/test.sh installs it): %v", err)
	}
	var lastErr error
	// A port found free may be taken before redis binds it: try a few.
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		s.Port, s.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(func() { s.Kill() })
			return s
		}
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	args := []string{"--bind", "127.0.0.1", "--port", strconv.Itoa(s.Port),
		"--save", "", "--appendonly", "no", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log")}
	if s.sentinel != "" {
		conf := filepath.Join(s.dir, "sentinel.conf")
		if err := os.WriteFile(conf, []byte(s.sentinel), 0o600); err != nil {
			return err
		}
		args = append([]string{conf, "--sentinel"}, args[:4]...)
		args = append(args, "--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
	}
	args = append(args, s.extra...)
	cmd := exec.Command("redis-server", args...)
	orphanProof(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("redis-server on %s exited: %s", s.Addr, tail(log, 400))
		default:
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("redis-server on %s did not answer: %w", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Stop shuts the server down (SHUTDOWN NOSAVE) and waits for the process.
func (s *Server) Stop() {
	s.t.Helper()
	if s.cmd == nil {
		return
	}
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = c.ShutdownNoSave(ctx).Err() // the connection drops: an error is expected
	cancel()
	_ = c.Close()
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.Kill()
	}
	s.cmd = nil
}

// Kill ends the process at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same port (empty: nothing is
// persisted).
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		s.t.Fatalf("redis-server on %s is still running", s.Addr)
	}
	// The port is normally free at once; TIME_WAIT does not block a
	// listener with SO_REUSEADDR, which redis sets. Retry briefly anyway.
	var err error
	for range 20 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("restart redis-server on %s: %v", s.Addr, err)
}

// Pause freezes the process (SIGSTOP): connections are accepted by the
// kernel but nothing answers, as with a hung server or a network partition.
func (s *Server) Pause() {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatalf("redis-server on %s is not running", s.Addr)
	}
	if err := pause(s.cmd.Process); err != nil {
		s.t.Fatalf("pause redis-server: %v", err)
	}
	s.t.Cleanup(s.Resume) // never leave a frozen process behind
}

// Resume continues a paused process (SIGCONT).
func (s *Server) Resume() {
	if s.cmd != nil {
		_ = resume(s.cmd.Process)
	}
}

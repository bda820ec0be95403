package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildBinaries compiles the worker and the starter of this module into dir.
func buildBinaries(ctx context.Context, dir string) (worker, starter string, err error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./worker", "./starter")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build ./worker ./starter: %w: %s", err, b)
	}
	return filepath.Join(dir, "worker"), filepath.Join(dir, "starter"), nil
}

// moduleRoot is the repository's root (where go.mod is).
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the mktos2s module: run chaos from the repository")
	}
	return filepath.Dir(gomod), nil
}

// supervisor keeps one worker subprocess running. Kill ends it the way a
// crash does; any other exit is restarted too, and counted.
type supervisor struct {
	bin    string
	env    []string
	logDir string
	home   string

	mu         sync.Mutex
	cmd        *exec.Cmd
	done       chan struct{}
	killed     bool // the current process was killed on purpose
	stopping   bool
	starts     int
	unexpected []string // exits nobody asked for
	wg         sync.WaitGroup
}

func newSupervisor(bin string, env []string, logDir string) (*supervisor, error) {
	home := filepath.Join(logDir, "worker-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	return &supervisor{bin: bin, env: env, logDir: logDir, home: home}, nil
}

// Start launches a new worker process with its own log file.
func (s *supervisor) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.startLocked()
}

func (s *supervisor) startLocked() error {
	s.starts++
	logPath := filepath.Join(s.logDir, fmt.Sprintf("worker-%02d.log", s.starts))
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// Not CommandContext: how the worker ends is the point of the run.
	cmd := exec.Command(s.bin)
	cmd.Dir = s.home
	cmd.Env = append([]string{"HOME=" + s.home, "PATH=" + os.Getenv("PATH")}, s.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start worker: %w", err)
	}
	done := make(chan struct{})
	s.cmd, s.done, s.killed = cmd, done, false
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := cmd.Wait()
		f.Close()
		close(done)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.cmd != cmd || s.killed || s.stopping {
			return
		}
		// The worker gave up by itself (e.g. it could not reach the server
		// while it restarted): note it and start another, as systemd would.
		s.unexpected = append(s.unexpected, fmt.Sprintf("worker #%d (pid %d) exited: %v", s.starts, cmd.Process.Pid, err))
		time.AfterFunc(time.Second, func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.cmd == cmd && !s.stopping {
				_ = s.startLocked()
			}
		})
	}()
	return nil
}

// Kill sends SIGKILL to the running worker and waits until it is gone.
func (s *supervisor) Kill() (int, error) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.killed = true
	s.mu.Unlock()
	if cmd == nil {
		return 0, errors.New("no worker running")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return 0, fmt.Errorf("kill worker %d: %w", cmd.Process.Pid, err)
	}
	<-done
	return cmd.Process.Pid, nil
}

// Stop ends the worker gracefully (SIGTERM, then SIGKILL after timeout) and
// restarts nothing any more.
func (s *supervisor) Stop(timeout time.Duration) {
	s.mu.Lock()
	s.stopping = true
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(timeout):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
	}
	s.wg.Wait()
}

// Unexpected lists the exits nobody asked for.
func (s *supervisor) Unexpected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unexpected...)
}

// starterCLI runs the starter binary, one process per command, appending
// what it prints to one log file per onboarding.
type starterCLI struct {
	bin    string
	config string // --config, when the environment does not say it all
	env    []string
	home   string
	logDir string
}

func (s starterCLI) run(ctx context.Context, logName string, args ...string) (string, error) {
	if s.config != "" {
		args = append([]string{"--config", s.config}, args...)
	}
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Dir = s.home
	cmd.Env = append([]string{"HOME=" + s.home, "PATH=" + os.Getenv("PATH")}, s.env...)
	out, err := cmd.CombinedOutput()
	f, ferr := os.OpenFile(filepath.Join(s.logDir, logName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if ferr == nil {
		fmt.Fprintf(f, "$ starter %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			fmt.Fprintf(f, "(exit: %v)\n", err)
		}
		f.Close()
	}
	return string(out), err
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime/stime in /proc/<pid>/stat. The kernel exports
// USER_HZ = 100 to user space on every architecture Go supports on Linux;
// reading it with sysconf would need cgo.
const userHZ = 100

// procSample is what /proc says about one process at one moment.
type procSample struct {
	CPU time.Duration // user + system time since the process started
	RSS int64         // resident set size now, bytes
	HWM int64         // peak resident set size, bytes (since start or the last resetPeak)
}

// sampleProc reads /proc/<pid>/stat and /proc/<pid>/status.
func sampleProc(pid int) (procSample, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	f, err := statFields(stat)
	if err != nil {
		return procSample{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return procSample{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procSample{}, err
	}
	s := procSample{CPU: time.Duration(utime+stime) * time.Second / userHZ}
	if s.RSS, err = statusKB(status, "VmRSS"); err != nil {
		return procSample{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	if s.HWM, err = statusKB(status, "VmHWM"); err != nil {
		return procSample{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return s, nil
}

// statFields returns the fields of a stat line after "(comm)", so that
// index 0 is field 3 (state) of proc(5). comm may itself hold spaces and
// parentheses, hence the last ')'.
func statFields(stat []byte) ([]string, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return nil, errors.New("no ')' after comm")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return nil, fmt.Errorf("%d fields after comm, want at least 13", len(f))
	}
	return f, nil
}

// statusKB reads a "Name:   123 kB" line of /proc/<pid>/status, in bytes.
func statusKB(status []byte, name string) (int64, error) {
	for line := range strings.SplitSeq(string(status), "\n") {
		rest, ok := strings.CutPrefix(line, name+":")
		if !ok {
			continue
		}
		v, ok := strings.CutSuffix(strings.TrimSpace(rest), " kB")
		if !ok {
			return 0, fmt.Errorf("%s: %q is not in kB", name, rest)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		return n * 1024, nil
	}
	return 0, fmt.Errorf("no %s line", name)
}

// resetPeak sets VmHWM back to the current RSS (proc(5), clear_refs value 5),
// so that a phase reports its own peak and not one of an earlier phase.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// childWithArgs finds the child process of this one whose command line holds
// every one of args: the dev server is started by the SDK, which does not
// expose its process.
func childWithArgs(args ...string) (int, error) {
	self := os.Getpid()
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		f, err := statFields(stat)
		if err != nil || f[1] != strconv.Itoa(self) {
			continue
		}
		raw, err := os.ReadFile(d + "/cmdline")
		if err != nil {
			continue
		}
		cmd := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if !slices.ContainsFunc(args, func(a string) bool { return !slices.Contains(cmd, a) }) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no child process with arguments %q", args)
}

// usage is the difference of two samples of one process, plus the peak.
type usage struct {
	CPU time.Duration
	HWM int64
	RSS int64
}

func since(before, after procSample) usage {
	return usage{CPU: after.CPU - before.CPU, HWM: after.HWM, RSS: after.RSS}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// productProfileSeconds is how long the worker's CPU is profiled from the
// start of the product phase, which takes about 40 s here.
const productProfileSeconds = 30

// profiling is a CPU profile being taken in the background.
type profiling struct{ done chan []string }

// wait returns the files the profile produced (none when it failed).
func (p profiling) wait() []string { return <-p.done }

// profileCPU profiles the product worker for the next seconds through its
// worker.pprofListen endpoint.
func (st *stack) profileCPU(ctx context.Context, name string, seconds int) profiling {
	p := profiling{done: make(chan []string, 1)}
	addr := st.pprofAddr
	go func() {
		p.done <- st.fetchProfile(ctx, addr, fmt.Sprintf("/debug/pprof/profile?seconds=%d", seconds), name+"-cpu",
			time.Duration(seconds)*time.Second)
	}()
	return p
}

// profileHeap takes the product worker's heap profile now.
func (st *stack) profileHeap(ctx context.Context, name string) []string {
	return st.fetchProfile(ctx, st.pprofAddr, "/debug/pprof/heap", name+"-heap", 0, "-sample_index=inuse_space")
}

// fetchProfile stores a profile as <out>/<name>.pprof and its `go tool
// pprof -top` as <name>.txt, and shows the top entries. A profile is an
// aid, so a failure is only reported.
func (st *stack) fetchProfile(ctx context.Context, addr, path, name string, takes time.Duration, topArgs ...string) []string {
	pprofFile, topFile := name+".pprof", name+".txt"
	err := func() error {
		hc := &http.Client{Timeout: takes + 30*time.Second}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", path, resp.StatusCode)
		}
		f, err := os.Create(filepath.Join(st.out, pprofFile))
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		args := append(append([]string{"tool", "pprof", "-top", "-nodecount=25"}, topArgs...), filepath.Join(st.out, pprofFile))
		top, err := exec.CommandContext(ctx, "go", args...).Output()
		if err != nil {
			return fmt.Errorf("go tool pprof: %w", err)
		}
		if err := os.WriteFile(filepath.Join(st.out, topFile), top, 0o644); err != nil {
			return err
		}
		lines := strings.Split(string(top), "\n")
		progress("%s (%s):\n%s", name, topFile, strings.Join(lines[:min(len(lines), 16)], "\n"))
		return nil
	}()
	if err != nil {
		progress("note: no %s profile: %v", name, err)
		return nil
	}
	return []string{pprofFile, topFile}
}

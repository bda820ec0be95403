package devserver

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
)

func binaryOrSkip(t *testing.T) string {
	t.Helper()
	bin, err := Locate()
	if err != nil && testing.Short() {
		t.Skipf("no Temporal CLI in -short mode: %v", err)
	}
	require.NoError(t, err, "build it with `make temporal`")
	return bin
}

func customAttributes(t *testing.T, ctx context.Context, s *Server) map[string]enumspb.IndexedValueType {
	t.Helper()
	resp, err := s.Client().OperatorService().ListSearchAttributes(ctx,
		&operatorservice.ListSearchAttributesRequest{Namespace: s.Namespace})
	require.NoError(t, err)
	return resp.GetCustomAttributes()
}

func TestStartRegistersSearchAttributes(t *testing.T) {
	bin := binaryOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	s, err := Start(ctx, Options{Binary: bin})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Stop()) })

	assert.Regexp(t, `^127\.0\.0\.1:\d+$`, s.Address)
	assert.Empty(t, s.UIURL)
	attrs := customAttributes(t, ctx, s)
	for _, name := range SearchAttributes {
		assert.Equal(t, enumspb.INDEXED_VALUE_TYPE_KEYWORD, attrs[name], name)
	}
}

// A search attribute missing from an existing database file (the namespace
// predates it) is registered again when the server is restarted on that file.
func TestExistingDatabaseGetsMissingSearchAttributes(t *testing.T) {
	bin := binaryOrSkip(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db := filepath.Join(t.TempDir(), "temporal.db")

	first, err := Start(ctx, Options{Binary: bin, DBFile: db})
	require.NoError(t, err)
	_, err = first.Client().OperatorService().RemoveSearchAttributes(ctx, &operatorservice.RemoveSearchAttributesRequest{
		Namespace: first.Namespace, SearchAttributes: []string{"OnboardingStep"},
	})
	require.NoError(t, err)
	_, present := customAttributes(t, ctx, first)["OnboardingStep"]
	require.False(t, present, "precondition: attribute removed")
	require.NoError(t, first.Stop())

	_, err = os.Stat(db + "-wal")
	assert.NoError(t, err, "the database runs in WAL mode")

	var logs bytes.Buffer
	second, err := Start(ctx, Options{Binary: bin, DBFile: db, UI: true, CodecEndpoint: "http://127.0.0.1:1/codec",
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, second.Stop()) })
	attrs := customAttributes(t, ctx, second)
	for _, name := range SearchAttributes {
		assert.Equal(t, enumspb.INDEXED_VALUE_TYPE_KEYWORD, attrs[name], name)
	}

	assert.Contains(t, logs.String(), "registering missing search attributes")
	assert.Contains(t, logs.String(), "OnboardingStep")

	require.NotEmpty(t, second.UIURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, second.UIURL, nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestLocate(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "temporal")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755))
	notExec := filepath.Join(dir, "plain")
	require.NoError(t, os.WriteFile(notExec, nil, 0o644))

	t.Run("env wins", func(t *testing.T) {
		t.Setenv(EnvBinary, fake)
		got, err := Locate()
		require.NoError(t, err)
		assert.Equal(t, fake, got)
	})
	t.Run("env pointing at a non-executable", func(t *testing.T) {
		t.Setenv(EnvBinary, notExec)
		_, err := Locate()
		assert.ErrorContains(t, err, EnvBinary)
	})
	t.Run("module root bin from a subdirectory", func(t *testing.T) {
		t.Setenv(EnvBinary, "")
		root := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644))
		require.NoError(t, os.MkdirAll(filepath.Join(root, "bin"), 0o755))
		require.NoError(t, os.MkdirAll(filepath.Join(root, "a", "b"), 0o755))
		t.Chdir(filepath.Join(root, "a", "b"))

		_, err := Locate()
		assert.ErrorContains(t, err, "make temporal")

		require.NoError(t, os.WriteFile(filepath.Join(root, "bin", "temporal"), []byte("#!/bin/sh\n"), 0o755))
		got, err := Locate()
		require.NoError(t, err)
		assert.Equal(t, filepath.Join(root, "bin", "temporal"), got)
	})
}

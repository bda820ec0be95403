// Package msapitest is a scripted HTTP server for the Graph and Dataverse client tests: each
// "METHOD path" answers as told, and every request is recorded so a test can check the exact
// shape that went out.
package msapitest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Handler answers one route with a status and a JSON body.
type Handler func(r *http.Request, body map[string]any) (status int, respBody string)

// Request is a recorded request; Body is the decoded JSON body (nil without one).
type Request struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   map[string]any
}

// Server is a scripted HTTP server; unknown routes answer 404 in Graph's error shape.
type Server struct {
	*httptest.Server
	mu     sync.Mutex
	routes map[string]Handler
	seen   []Request
}

// New starts a Server that is closed when the test ends.
func New(t *testing.T) *Server {
	t.Helper()
	s := &Server{routes: map[string]Handler{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		if data, _ := io.ReadAll(r.Body); len(data) > 0 {
			if err := json.Unmarshal(data, &body); err != nil {
				t.Errorf("%s %s: body is not a JSON object: %v", r.Method, r.URL.Path, err)
			}
		}
		s.mu.Lock()
		s.seen = append(s.seen, Request{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		h := s.routes[r.Method+" "+r.URL.Path]
		s.mu.Unlock()
		if h == nil {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"error":{"code":"NotFound","message":"no route"}}`)
			return
		}
		status, out := h(r, body)
		if out != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		fmt.Fprint(w, out)
	}))
	t.Cleanup(s.Close)
	return s
}

// On sets the answer for "METHOD /path" (the decoded path, without the query).
func (s *Server) On(route string, h Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.routes[route] = h
}

// Requests returns what was received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.seen...)
}

// Last returns the most recent request.
func (s *Server) Last() Request {
	r := s.Requests()
	if len(r) == 0 {
		return Request{}
	}
	return r[len(r)-1]
}

// Reply is a Handler with a fixed answer.
func Reply(status int, body string) Handler {
	return func(*http.Request, map[string]any) (int, string) { return status, body }
}

// Token is a fixed msapi.TokenSource.
type Token string

// Token returns the fixed token.
func (t Token) Token(context.Context) (string, error) { return string(t), nil }

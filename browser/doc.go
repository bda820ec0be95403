// Package browser holds the test of what an operator sees in the Temporal
// UI, in a real headless Chromium (Debian's chromium package, driven with
// chromedp). It is behind the build tag "browser" so `make test` runs
// without a browser; `make test-browser` (and .ci/run) runs it:
//
//	go test -tags browser ./browser -count=1 -v
//
// Screenshots go to browser/out/ (git-ignored).
package browser

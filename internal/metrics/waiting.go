package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	waitingDesc = prometheus.NewDesc(WaitingConsent,
		"Running onboardings waiting for admin consent (Temporal visibility: every worker reports the namespace's count; use max).", nil, nil)
	waiting7dDesc = prometheus.NewDesc(WaitingConsentOver7d,
		"Running onboardings waiting for admin consent that started more than 7 days ago.", nil, nil)
)

// cacheFor keeps scrape storms from turning into visibility queries.
const cacheFor = 10 * time.Second

type waitingCollector struct {
	count CountWaiting
	now   func() time.Time

	mu          sync.Mutex
	at          time.Time
	all, over7d int64
	ok          bool
}

func (c *waitingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- waitingDesc
	ch <- waiting7dDesc
}

// Collect reports nothing when the count fails: an absent gauge alerts as
// absent, a stale one would mislead.
func (c *waitingCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); !c.ok || now.Sub(c.at) >= cacheFor {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		all, old, err := c.count(ctx, now.Add(-7*24*time.Hour))
		cancel()
		c.at, c.all, c.over7d, c.ok = now, all, old, err == nil
	}
	if !c.ok {
		return
	}
	ch <- prometheus.MustNewConstMetric(waitingDesc, prometheus.GaugeValue, float64(c.all))
	ch <- prometheus.MustNewConstMetric(waiting7dDesc, prometheus.GaugeValue, float64(c.over7d))
}

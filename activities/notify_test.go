package activities

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

func TestNotifyConsentPostsTheLinkAndExpiry(t *testing.T) {
	type got struct {
		contentType string
		msg         WebhookMessage
	}
	received := make(chan got, 4)
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var m WebhookMessage
		if assert.NoError(t, json.Unmarshal(body, &m), string(body)) {
			received <- got{r.Header.Get("Content-Type"), m}
		}
		if status == http.StatusFound {
			http.Redirect(w, r, "http://127.0.0.1:9/elsewhere", status)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	hookURL := srv.URL + "/services/T000/B000/secret-token"

	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	acts := &Activities{deps: Deps{Webhook: &Webhook{URL: hookURL}}}
	env.RegisterActivity(acts)
	expires := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	in := NotifyConsentInput{Kind: NotifyWaiting, WorkflowID: "onboarding/t1/contoso.crm.dynamics.com", TenantID: "t1",
		OrgHost: "contoso.crm.dynamics.com", AppName: "Marketo Integration",
		ConsentURL: "https://login.microsoftonline.com/t1/adminconsent?client_id=abc&state=xyz", ExpiresAt: expires}

	v, err := env.ExecuteActivity(acts.NotifyConsent, in)
	require.NoError(t, err)
	var res NotifyConsentResult
	require.NoError(t, v.Get(&res))
	assert.True(t, res.Sent)
	g := <-received
	assert.Equal(t, "application/json", g.contentType)
	assert.Equal(t, in.ConsentURL, g.msg.ConsentURL)
	assert.True(t, expires.Equal(g.msg.ExpiresAt))
	assert.Equal(t, "t1", g.msg.TenantID)
	assert.Contains(t, g.msg.Text, in.ConsentURL)
	assert.Contains(t, g.msg.Text, "Tue, 08 Dec 2026 10:00:00 UTC")
	assert.Contains(t, g.msg.Text, "Global Administrator")
	assert.Contains(t, g.msg.Text, "Marketo Integration")

	tests := []struct {
		name      string
		status    int
		retryable bool
	}{
		{"a server error is retried", http.StatusBadGateway, true},
		{"throttling is retried", http.StatusTooManyRequests, true},
		{"a refusal is not", http.StatusNotFound, false},
		{"a redirect is not followed", http.StatusFound, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status = tt.status
			_, err := env.ExecuteActivity(acts.NotifyConsent, in)
			<-received
			var appErr *temporal.ApplicationError
			require.True(t, errors.As(err, &appErr), "%v", err)
			assert.Equal(t, !tt.retryable, appErr.NonRetryable(), appErr.Error())
			assert.NotContains(t, err.Error(), "secret-token", "the webhook URL's token never appears in an error")
		})
	}

	t.Run("no webhook, no message", func(t *testing.T) {
		env := suite.NewTestActivityEnvironment()
		none := &Activities{}
		env.RegisterActivity(none)
		v, err := env.ExecuteActivity(none.NotifyConsent, in)
		require.NoError(t, err)
		var res NotifyConsentResult
		require.NoError(t, v.Get(&res))
		assert.False(t, res.Sent)
		assert.Empty(t, received)
	})
}

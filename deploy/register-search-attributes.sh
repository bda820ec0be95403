#!/bin/sh
# Registers the Keyword search attributes of the onboarding workflow
# (DESIGN.md: TenantId, OrgHost, OnboardingStep). Re-running is harmless.
set -eu
for name in TenantId OrgHost OnboardingStep; do
  if temporal operator search-attribute list --address "$TEMPORAL_ADDRESS" --namespace default | grep -qw "$name"; then
    echo "search attribute $name already registered"
  else
    temporal operator search-attribute create --address "$TEMPORAL_ADDRESS" --namespace default --name "$name" --type Keyword
  fi
done

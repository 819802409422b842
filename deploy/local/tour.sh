#!/usr/bin/env bash
# The README's tour, run and checked against a running system with the demo
# data, so that the README cannot drift from what Sextant answers:
#
#   deploy/local/up.sh && deploy/local/demo.sh && deploy/local/tour.sh
#
# Every line of the README's tour (its "A ten-minute tour" section's code
# blocks) is a line of this script, in the same order: the script checks
# that first. After each command it checks the answer: the status code,
# and the figures the README shows. `curl` here is a function that calls
# the real curl and keeps each answer's status and body for the checks.
# Needs curl and jq; SEXTANT_STATE_DIR as for up.sh (the README's
# `.sextant/...` paths are read from there). Exits non-zero at the first
# answer that differs.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
TOUR_SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")

command -v jq >/dev/null 2>&1 || die "required program 'jq' not found"
command -v curl >/dev/null 2>&1 || die "required program 'curl' not found"
[[ -f $RUN_DIR/env ]] || die "no $(rel "$RUN_DIR/env"): bring the system up first (deploy/local/up.sh)"
[[ -f $RUN_DIR/demo ]] || die "no $(rel "$RUN_DIR/demo"): load the demo data first (deploy/local/demo.sh)"

# ------------------------------------------------------------------ checks --

# Every non-blank line of the README's tour blocks is a line of this script,
# in order.
check_readme() {
  local line at=0 lines=0
  local -a mine
  mapfile -t mine <"$TOUR_SCRIPT"
  while IFS= read -r line; do
    [[ -n ${line//[[:space:]]/} ]] || continue
    lines=$((lines + 1))
    while ((at < ${#mine[@]})) && [[ ${mine[at]} != "$line" ]]; do
      at=$((at + 1))
    done
    ((at < ${#mine[@]})) ||
      die "README.md's tour has a line that deploy/local/tour.sh does not run (or not in this order): $line"
    at=$((at + 1))
  done < <(awk '/^## /{ tour = ($0 ~ /^## A ten-minute tour/) }
                tour && /^```/{ block = !block; next }
                tour && block' "$SEXTANT_ROOT/README.md")
  ((lines >= 30)) || die "found only $lines lines in the README's tour; is its heading still \"A ten-minute tour\"?"
  note "README.md: the tour's $lines lines are this script's"
}

TOUR_TMP=$(mktemp -d)
trap 'rm -rf "$TOUR_TMP"' EXIT
CHECKS=0

# The real curl, keeping the status and the body of each answer.
curl() {
  local code arg
  for arg; do
    [[ $arg == http* ]] && printf '%s\n' "$arg" >"$TOUR_TMP/request"
  done
  code=$(command curl -o "$TOUR_TMP/body" -w '%{http_code}' "$@") ||
    die "curl failed: $(<"$TOUR_TMP/request")"
  printf '%s\n' "$code" >"$TOUR_TMP/status"
  cat "$TOUR_TMP/body"
  echo
}

# expect STATUS [JQ...]: the last answer had STATUS, and every jq
# expression holds of its body.
expect() {
  local status request condition
  status=$(<"$TOUR_TMP/status") request=$(<"$TOUR_TMP/request")
  [[ $status == "$1" ]] ||
    die "$request answered $status, not $1: $(head -c 800 "$TOUR_TMP/body")"
  shift
  for condition; do
    jq -e "$condition" "$TOUR_TMP/body" >/dev/null ||
      die "$request: the answer does not hold $condition: $(head -c 800 "$TOUR_TMP/body")"
    CHECKS=$((CHECKS + 1))
  done
  CHECKS=$((CHECKS + 1))
}

# holds VALUE JQ...: every jq expression holds of VALUE (JSON).
holds() {
  local value=$1 condition
  shift
  for condition; do
    jq -e "$condition" <<<"$value" >/dev/null ||
      die "$condition does not hold of: $(head -c 800 <<<"$value")"
    CHECKS=$((CHECKS + 1))
  done
}

UUID='test("^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")'

check_readme
# The README's paths are relative to the repository, with the state in
# .sextant: a directory where .sextant is this state directory.
mkdir "$TOUR_TMP/root"
ln -s "$STATE_DIR" "$TOUR_TMP/root/.sextant"
cd "$TOUR_TMP/root"

# -------------------------------------------------------------------- tour --

say "a client, its key and its detail"
# shellcheck source=/dev/null # written by up.sh and demo.sh
source .sextant/run/env && source .sextant/run/demo    # the URLs, the operator key, the demo's clients
CMD=$SEXTANT_COMMAND_URL QRY=$SEXTANT_QUERY_URL
OP=(-H "Authorization: Bearer $SEXTANT_OPERATOR_KEY" -H 'Content-Type: application/json')

# Register a client (operator only) and issue it a reader key, shown this once.
CLIENT=$(curl -sS -X POST "$CMD/v1/clients" "${OP[@]}" \
  -d '{"name": "Acme", "industry": "fintech", "company_size": "11-50", "region": "AU"}' | jq -r .client_id)
expect 201 ".client_id | $UUID" '.position > 0'
answer=$(curl -sS -X POST "$CMD/v1/clients/$CLIENT/api-keys" "${OP[@]}" -d '{"role": "reader", "label": "reporting"}')
expect 201 '.key | startswith("sxk_")' '.role == "reader"'
KEY=$(echo "$answer" | jq -r .key) POSITION=$(echo "$answer" | jq -r .position)
curl -sS "$QRY/v1/clients/$CLIENT?min_position=$POSITION" -H "Authorization: Bearer $KEY"
# {"client_id":"…","name":"Acme",…,"api_keys":[{"key_id":"…","role":"reader",…}],…}
expect 200 '.name == "Acme"' ".client_id == \"$CLIENT\"" '.api_keys | length == 1' '.api_keys[0].role == "reader"'

say "the context ledger"
answer=$(curl -sS -X POST "$CMD/v1/clients/$CLIENT/context/updates" "${OP[@]}" \
  -d '{"source": "email_performance", "patch": {"messaging": {"tone": "plain, no hype"}},
       "rationale": "plain subject lines got 1.4x the replies",
       "evidence": {"sends": 1200, "lift": 1.4}, "confidence": 0.8}')
expect 202 '.status == "pending"' '.version == null'
echo "$answer"    # {"update_id":"…","status":"pending","version":null,"position":…}
UPDATE=$(echo "$answer" | jq -r .update_id)
curl -sS "$QRY/v1/clients/$CLIENT/approvals?min_position=$(echo "$answer" | jq -r .position)" -H "Authorization: Bearer $KEY"
expect 200 ".items | length == 1" ".items[0].update_id == \"$UPDATE\"" '.items[0].status == "pending"'
POSITION=$(curl -sS -X POST "$CMD/v1/clients/$CLIENT/context/updates/$UPDATE/approve" \
  -H "Authorization: Bearer $SEXTANT_OPERATOR_KEY" | jq -r .position)     # {"version":1,"position":…}
expect 200 '.version == 1'
curl -sS "$QRY/v1/clients/$CLIENT/context?min_position=$POSITION" -H "Authorization: Bearer $KEY"   # the document; ETag "1"
expect 200 '.version == 1' '.document.messaging.tone == "plain, no hype"'
curl -sS "$QRY/v1/clients/$CLIENT/context/agents/email_strategist?min_position=$POSITION" -H "Authorization: Bearer $KEY"
# {"agent":"email_strategist",…,"context_version":1,…,"messaging":{"tone":"plain, no hype"},…}
expect 200 '.agent == "email_strategist"' '.context_version == 1' '.messaging.tone == "plain, no hype"'

say "sends and outcomes"
curl -sS -X POST "$CMD/v1/clients/$CLIENT/resources" "${OP[@]}" \
  -d '{"kind": "mailbox", "address": "sam@acme-mail.com", "daily_cap": 30}'
expect 201
AUTH='{"lead_ref": "crm_lead_0042", "channel": "email", "resource": "sam@acme-mail.com", "lead_tier": "warm"}'
curl -sS -X POST "$CMD/v1/clients/$CLIENT/sends/authorize" "${OP[@]}" -d "$AUTH"
# {"authorization_id":"…","permit":true,"reasons":[],"position":…}
expect 200 '.permit == true' '.reasons == []'
curl -sS -X POST "$CMD/v1/clients/$CLIENT/sends" "${OP[@]}" \
  -d '{"provider": "smartlead", "provider_message_id": "msg-123", "lead_ref": "crm_lead_0042",
       "lead": {"email": "ana@example.com", "industry": "fintech", "seniority": "vp", "tier": "warm"},
       "channel": "email", "content": {"subject": "Quick question on month-end close?", "cta": "meeting"},
       "agent": "email_strategist", "resource": "sam@acme-mail.com", "sent_at": "2026-11-18T09:12:00Z"}'
# {"position":…,"send_id":"…","status":"recorded"}      201; sent again: 200, "duplicate"
expect 201 '.status == "recorded"' ".send_id | $UUID"
POSITION=$(curl -sS -X POST "$CMD/v1/clients/$CLIENT/outcomes" "${OP[@]}" \
  -d '{"outcomes": [
        {"provider": "smartlead", "provider_message_id": "msg-123", "kind": "delivered", "occurred_at": "2026-11-18T09:12:05Z"},
        {"provider": "smartlead", "provider_message_id": "msg-123", "kind": "unsubscribed", "occurred_at": "2026-11-18T16:02:00Z"}]}' \
  | jq -r .position)                                       # a batch answers per item
expect 200 '.errors == 0'
curl -sS -X POST "$CMD/v1/clients/$CLIENT/sends/authorize" "${OP[@]}" -d "$AUTH"
# {"authorization_id":"…","permit":false,"reasons":["suppressed"],"position":…}
expect 200 '.permit == false' '.reasons == ["suppressed"]'
curl -sS "$QRY/v1/clients/$CLIENT/suppression?min_position=$POSITION" -H "Authorization: Bearer $KEY"
expect 200
curl -sS -X POST "$CMD/v1/clients/$CLIENT/leads/crm_lead_0042/erase" -H "Authorization: Bearer $SEXTANT_OPERATOR_KEY"
# {"lead_ref":"crm_lead_0042","erased":{"identities":1,"subjects":1,"dead_letters":0},"position":…}
expect 200 '.lead_ref == "crm_lead_0042"' '.erased.identities == 1' '.erased.subjects == 1'

say "learning, on the demo's Northwind Capital"
curl -sS "$QRY/v1/clients/$SEXTANT_DEMO_CLIENT/patterns/what?metric=reply" "${OP[@]}"
# {…,"window_days":14,"baseline":{"sends":10000,"events":1025,"rate":0.1025,"maturing_sends":0,"maturing_events":0},"rows":[{"key":"cta=meeting","sends":1999,"events":267,…,"lift":1.4098520236371483,…},…]}
expect 200 '.baseline | .sends == 10000 and .events == 1025 and .maturing_sends == 0' \
  '.rows[0] | .key == "cta=meeting" and .sends == 1999 and .events == 267 and (.lift * 1e6 | round) == 1409852'
PROPOSAL=$(curl -sS "$QRY/v1/clients/$SEXTANT_DEMO_CLIENT/approvals" "${OP[@]}" \
  | jq -c '.items[] | select(.evidence.level == "client" and .evidence.key == "cta=meeting")')
expect 200
echo "$PROPOSAL" | jq -r .rationale
# WHAT cta = meeting: reply rate 13.4% against 9.5% for the other sends (lift 1.41 adjusted for …, 95% interval …; always-valid p = … against its bar …; 1999 matured sends). Prefer it.
holds "$PROPOSAL" '.status == "pending"' '.source == "email_performance"' \
  '.rationale | startswith("WHAT cta = meeting: reply rate 13.4% against") and endswith("Prefer it.")'
POSITION=$(curl -sS -X POST "$CMD/v1/clients/$SEXTANT_DEMO_CLIENT/context/updates/$(echo "$PROPOSAL" | jq -r .update_id)/approve" \
  -H "Authorization: Bearer $SEXTANT_OPERATOR_KEY" | jq -r .position)     # {"version":1,"position":…}
expect 200 '.version == 1'
curl -sS "$QRY/v1/clients/$SEXTANT_DEMO_CLIENT/context?min_position=$POSITION" "${OP[@]}" | jq -c .document.playbook
# {"learned":{"what":{"cta=meeting":"prefer"}}}
expect 200 '.document.playbook == {"learned": {"what": {"cta=meeting": "prefer"}}}'

say "experiments, and the platform's patterns"
answer=$(curl -sS -X POST "$CMD/v1/clients/$CLIENT/experiments" "${OP[@]}" \
  -d '{"name": "subject length", "variants": [{"id": "short", "weight": 1}, {"id": "long", "weight": 1}], "metric": "reply"}')
expect 201 ".experiment_id | $UUID"
EXPERIMENT=$(echo "$answer" | jq -r .experiment_id) POSITION=$(echo "$answer" | jq -r .position)
curl -sS "$QRY/v1/clients/$CLIENT/experiments/$EXPERIMENT/assignment?lead_ref=crm_lead_0042&min_position=$POSITION" \
  -H "Authorization: Bearer $KEY"      # {…,"variant":"short"} or "long": the same lead, the same variant, every time
expect 200 '.variant == "short" or .variant == "long"'
curl -sS "$QRY/v1/clients/$CLIENT/experiments/$EXPERIMENT" -H "Authorization: Bearer $KEY"
# {"experiment":{…,"status":"running"},"results":{"decision":"keep_running","sample_ratio_p":…,"variants":[…],"winner":null,…}}
expect 200 '.experiment.status == "running"' '.results.decision == "keep_running"' '.results.winner == null'
curl -sS -X POST "$CMD/v1/clients/$CLIENT/experiments/$EXPERIMENT/conclude" -H "Authorization: Bearer $SEXTANT_OPERATOR_KEY"
expect 200
curl -sS "$QRY/v1/patterns/platform/what?industry=fintech" -H "Authorization: Bearer $SEXTANT_OPERATOR_KEY"
# {…,"contributing_clients":6,"baseline_sends":17500,"baseline_events":1732,"rows":[{"clients":6,"key":"cta=meeting","sends":3469,"events":474,…},…]}
# consenting clients only; a row only where at least 5 of them have 50 sends of the key; no client named
expect 200 '.contributing_clients == 6' '.baseline_sends == 17500' '.baseline_events == 1732' \
  '.rows[0] | .key == "cta=meeting" and .clients == 6 and .sends == 3469 and .events == 474'

say "reports and alerts"
curl -sS "$QRY/v1/clients/$SEXTANT_DEMO_CLIENT/reports/weekly?week=2026-W43" "${OP[@]}" \
  | jq -c '.headline.metrics[] | select(.metric == "reply_rate") | {events, sends, verdict: .previous_week.verdict}'
# {"events":58,"sends":615,"verdict":"no significant change"}
expect 200 '.headline.metrics[] | select(.metric == "reply_rate") | .events == 58 and .sends == 615 and .previous_week.verdict == "no significant change"'
curl -sS "$QRY/v1/clients/$SEXTANT_DEMO_CLIENT/reports/weekly?week=2026-W43&format=html" "${OP[@]}" | grep -o '<title>.*</title>'
# <title>Weekly report 2026-W43: Northwind Capital</title>     one self-contained page with its charts; ?format=csv for a spreadsheet
expect 200
POSITION=$(curl -sS -X POST "$CMD/v1/alerts/detect" -H "Authorization: Bearer $SEXTANT_OPERATOR_KEY" | jq -r .position)
expect 200
curl -sS "$QRY/v1/alerts?status=open&min_position=$POSITION" -H "Authorization: Bearer $SEXTANT_OPERATOR_KEY" | jq -c '[.items[].condition] | unique'
# ["no_sends"]
expect 200 '[.items[].condition] | unique == ["no_sends"]'

say "the tour answered as the README shows ($CHECKS checks)"

#!/usr/bin/env bash
# The trust chain as a user meets it in a default (release-featured) build: a license from a
# self-made key, or from a self-run portal certified by a self-made root, counts nowhere, and
# no flag, config key or data file adds a trust anchor. The Rust tests run with
# --all-features (a development build), so this script checks the build users get.
#
# Usage: tests/default_build.sh [SIPMETER_BINARY]   (default: builds target/debug/sipmeter)
set -euo pipefail
cd "$(dirname "$0")/.."

bin=${1:-}
if [ -z "$bin" ]; then
  cargo build --locked -p sipmeter --bin sipmeter
  bin=${CARGO_TARGET_DIR:-target}/debug/sipmeter
fi
work=$(mktemp -d)
portal_pid=
cleanup() {
  [ -n "$portal_pid" ] && kill "$portal_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
fail() { failed=$((failed + 1)); echo "FAILED: $1"; }
# expect_refused NAME OUTPUT_FILE PATTERN -- COMMAND...: the command fails and says PATTERN.
expect_refused() {
  local name=$1 pattern=$2
  shift 3
  if "$@" >"$work/out" 2>&1; then
    fail "$name: accepted"; cat "$work/out"
  elif grep -q -- "$pattern" "$work/out"; then
    ok "$name"
  else
    fail "$name: refused without \"$pattern\""; cat "$work/out"
  fi
}

version=$("$bin" --version)
case "$version" in
  sipmeter\ *development*) fail "--version: a default build says it is a development build: $version" ;;
  sipmeter\ *) ok "--version is a release version ($version)" ;;
  *) fail "--version printed nothing usable: $version" ;;
esac

data=$work/data
"$bin" --data-dir "$data" portal keygen --out "$work/k" >/dev/null
hwid=$("$bin" --data-dir "$data" license hwid | awk '{print $1}')
"$bin" portal issue --signing-key "$work/k/signing.key" --channels 100000 --hwid "$hwid" \
  --formal-end 2099-12-31 --out "$work/self.key" >/dev/null

expect_refused "license verify (self-made key)" "was not issued by the vendor" -- \
  "$bin" --data-dir "$data" license verify "$work/self.key"
expect_refused "license install (self-made key)" "was not issued by the vendor" -- \
  "$bin" --data-dir "$data" license install "$work/self.key"
[ ! -e "$data/license.key" ] && ok "nothing installed" || fail "a license file was installed"
expect_refused "--trusted-key does not exist" "unexpected argument '--trusted-key'" -- \
  "$bin" --data-dir "$data" license --trusted-key "$work/k/signing.pub" install "$work/self.key"
expect_refused "license trust-portal does not exist" "unrecognized subcommand" -- \
  "$bin" --data-dir "$data" license trust-portal

printf 'trusted_keys = ["%s"]\n' "$work/k/signing.pub" >"$work/config.toml"
expect_refused "config trusted_keys" "only a development build" -- \
  "$bin" --config-file "$work/config.toml" --data-dir "$data" license status

# A file copied into the data directory: the status is invalid, the lock names the reason.
mkdir -p "$data"
cp "$work/self.key" "$data/license.key"
"$bin" --data-dir "$data" license status --json >"$work/status.json" || true
if grep -q '"code": "untrusted_issuer"' "$work/status.json" && grep -q '"mode": "invalid"' "$work/status.json"; then
  ok "a copied self-made file is not accepted (untrusted_issuer)"
else
  fail "copied file"; cat "$work/status.json"
fi
rm "$data/license.key"

# A self-run portal certified by a self-made root: Get License installs nothing.
"$bin" portal keygen --out "$work/root" >/dev/null
pdata=$work/portal
cust=$("$bin" --data-dir "$pdata" portal customer add --name Self | tail -1)
"$bin" --data-dir "$pdata" portal certify --root-key "$work/root/signing.key" >/dev/null
token=$("$bin" --data-dir "$pdata" portal license add --customer "$cust" --channels 100000 \
  --formal-end 2099-12-31 | tail -1)
port=$((20000 + RANDOM % 20000))
"$bin" --data-dir "$pdata" portal serve --listen "127.0.0.1:$port" --admin-password pw-pw-pw-pw \
  >"$work/portal.log" 2>&1 &
portal_pid=$!
for _ in $(seq 1 100); do
  grep -q "portal on http" "$work/portal.log" 2>/dev/null && break
  sleep 0.1
done
expect_refused "--set-license-key against a self-run portal" "was not issued by the vendor" -- \
  "$bin" --data-dir "$data" --set-license-key "$token" --portal "http://127.0.0.1:$port"
[ ! -e "$data/license.key" ] && ok "nothing installed from the self-run portal" || fail "installed from the self-run portal"
"$bin" --data-dir "$data" license status | grep -q "evaluation" && ok "still in evaluation mode" || fail "not in evaluation mode"

echo "default build: $passed passed, $failed failed"
[ "$failed" = 0 ]

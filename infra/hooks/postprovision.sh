#!/bin/sh
# azd postprovision hook: creates the connector's own keys in Key Vault the first time, and never
# replaces one that exists (a new hash key would orphan every visit; docs/deploy.md#keys).
# Needs the Azure CLI signed in as the deployer (Key Vault Secrets Officer, from infra/app/rbac.bicep)
# and openssl. Key material goes through 0600 files, never command-line arguments.
set -eu

vault="${AZURE_KEY_VAULT_NAME:?AZURE_KEY_VAULT_NAME is not set: azd runs this hook after provisioning}"

# The names infra/main.bicep (secretNames) gives the secrets; tests/infra checks they agree.
HASH_KEY=connector-hash-key
SEALING_KEYS=connector-sealing-keys
SIGNING_KEYS=connector-signing-keys
ENTRA_CLIENT_SECRET=entra-client-secret
SMS_EVENTS_SECRET=sms-events-secret

umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT INT TERM

# The vault's secret names. A failure is never read as "absent": role assignments take a few
# minutes to reach Key Vault, so retry, then give up without writing anything.
list_names() {
  tries=0
  until az keyvault secret list --vault-name "$vault" --query "[].name" --output tsv >"$work/names"; do
    tries=$((tries + 1))
    if [ "$tries" -ge "${KEY_VAULT_RETRIES:-10}" ]; then
      echo "Cannot list the secrets of $vault; nothing was written." >&2
      exit 1
    fi
    sleep "${KEY_VAULT_RETRY_SECONDS:-15}"
  done
}

has() { grep -qx "$1" "$work/names"; }

hash_key() { openssl rand -base64 48 | tr -d '\n'; }
sealing_key() { openssl rand -base64 32 | tr -d '\n'; }
# URL-safe: it travels in the Event Grid subscription's webhook URL (?secret=).
events_secret() { openssl rand -hex 32 | tr -d '\n'; }
# RS384 (RSA) first: it is what every EHR accepts; ES384 (P-384) beside it.
signing_keys() {
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072 2>/dev/null
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 2>/dev/null
}

ensure() {
  name="$1"
  make="$2"
  if has "$name"; then
    echo "kept    $name"
    return
  fi
  "$make" >"$work/$name"
  az keyvault secret set --vault-name "$vault" --name "$name" --file "$work/$name" \
    --encoding utf-8 --output none
  rm -f "$work/$name"
  echo "created $name"
}

list_names
ensure "$HASH_KEY" hash_key
ensure "$SEALING_KEYS" sealing_key
ensure "$SIGNING_KEYS" signing_keys
ensure "$SMS_EVENTS_SECRET" events_secret

# Secrets only their owners can give: say which are still missing, and how to set them.
missing=""
has "$ENTRA_CLIENT_SECRET" || missing="$missing $ENTRA_CLIENT_SECRET"
for ehr in $(printf '%s' "${EHR_SECRET_NAMES:-}" | tr ',' ' '); do
  name="ehr-secret-$(printf '%s' "$ehr" | tr 'A-Z_' 'a-z-')"
  has "$name" || missing="$missing $name"
done
if [ -n "$missing" ]; then
  echo "Still to set in $vault (the app reads them as Key Vault references):"
  for name in $missing; do
    echo "  az keyvault secret set --vault-name $vault --name $name --file <file holding it>"
  done
fi
# The Graph notification certificate the deployment names (GRAPH_NOTIFICATION_CERTIFICATE_NAME):
# a certificate's key and certificate are listed as its secret of the same name.
cert="${GRAPH_NOTIFICATION_CERTIFICATE_NAME:-}"
if [ -n "$cert" ] && ! has "$cert"; then
  echo "Still to create in $vault (docs/deploy.md, the notification certificate):"
  echo "  az keyvault certificate create --vault-name $vault -n $cert -p <PEM policy>"
fi

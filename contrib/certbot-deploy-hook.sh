#!/bin/sh
# certbot deploy hook for ymds's tls: endpoint.
#
# certbot keeps private keys readable only by root; ymds runs as the user "ymds".  This hook
# copies the renewed certificate into /etc/ymds/tls (owner root, group ymds, key mode 0640).
# No restart is needed: ymds's tls: endpoint re-reads changed files within `reload`
# seconds (default 60) on the next connection, and keeps serving the old certificate if
# the new files cannot be loaded (it logs "tls: keeping the current certificate ...").
#
# Install:
#   sudo install -m 0755 contrib/certbot-deploy-hook.sh /etc/letsencrypt/renewal-hooks/deploy/ymds.sh
#   sudo certbot certonly --standalone -d pay.example.org     # or --webroot, --dns-...
#   sudo RENEWED_LINEAGE=/etc/letsencrypt/live/pay.example.org /etc/letsencrypt/renewal-hooks/deploy/ymds.sh
# and in /etc/ymds/ymds.toml:
#   endpoint = "tls:/etc/ymds/tls:port=443"          (add :reload=60 to change the interval)
# Test renewal: sudo certbot renew --dry-run   (a dry run does not call deploy hooks;
# `sudo certbot renew --force-renewal` does).
#
# With --standalone, certbot needs port 80 free (ymds listens on 443 only, so it is).
set -eu

: "${RENEWED_LINEAGE:?certbot sets RENEWED_LINEAGE; run me as a deploy hook}"
DEST=${YMDS_TLS_DIR:-/etc/ymds/tls}
GROUP=${YMDS_GROUP:-ymds}

install -d -m 0750 -o root -g "$GROUP" "$DEST"
# Write both files under temporary names, then rename: ymds never sees a new certificate
# with an old key (it reloads when the modification time changes).
install -m 0644 -o root -g "$GROUP" "$RENEWED_LINEAGE/fullchain.pem" "$DEST/.fullchain.pem.new"
install -m 0640 -o root -g "$GROUP" "$RENEWED_LINEAGE/privkey.pem" "$DEST/.privkey.pem.new"
mv -f "$DEST/.privkey.pem.new" "$DEST/privkey.pem"
mv -f "$DEST/.fullchain.pem.new" "$DEST/fullchain.pem"
echo "ymds: installed the certificate of $RENEWED_LINEAGE into $DEST; ymds picks it up within its reload interval"

#!/bin/sh
# The proxy's entry point (docker-compose.yml): nginx, kept up to date with the app's replicas.
#
# nginx resolves `app` once, when it starts, and keeps those addresses: after a scale-down it
# would go on trying replicas that are gone (each try waits for proxy_connect_timeout), and
# after a scale-up it would never send anyone to the new ones. The upstream `resolve` parameter
# that fixes this in nginx itself needs 1.27.3, so this works with any version: every few
# seconds it asks Docker's DNS for the replicas' addresses, and when the set changes it reloads
# nginx. A reload is graceful: new connections follow the new set at once, and the old workers
# close their sockets within worker_shutdown_timeout, after which browsers reconnect, each room
# again all on one instance.
set -eu
name=${STACKVOTE_UPSTREAM:-app}
every=${STACKVOTE_FOLLOW_SECONDS:-2}

replicas() {
    getent hosts "$name" 2>/dev/null | awk '{print $1}' | sort | tr '\n' ' '
}

follow() {
    known=$(replicas)
    while sleep "$every"; do
        now=$(replicas)
        # Nothing resolved (every replica down, or DNS busy): keep what nginx has. A reload
        # that fails (nginx not up yet) is tried again on the next round.
        if [ -n "$now" ] && [ "$now" != "$known" ]; then
            echo "proxy-follow: replicas now $now(were $known); reloading" >&2
            nginx -s reload && known=$now
        fi
    done
}

if command -v getent >/dev/null 2>&1; then
    follow &
else
    echo "proxy-follow: no getent here; restart the proxy after scaling the app" >&2
fi
# nginx itself is the container's main process, so `docker stop` (SIGQUIT, a graceful stop)
# reaches it as in the image's own command.
exec nginx -g 'daemon off;'

#!/bin/sh
# Redis with a password: the redis container runs this instead of redis-server (its
# arguments are redis-server's). Each REDIS_PASSWORD_<NAME> variable of the container
# makes one user, <name> in lower case with `-` for `_`, with that password and the rights
# of its role below; a variable for a user named nowhere below stops the start. A client
# without a password may only PING (the healthcheck). docker/README.md says who is who.
set -eu

acl="${TMPDIR:-/tmp}/users.acl"
umask 077  # the file is Redis's alone (it holds the passwords' hashes)

rights() {
    case "$1" in
        # The services' messages (kombu, database 0): any key, but no other database
        # (no SELECT, MOVE or COPY), no server administration, no pub/sub (Celery's
        # remote control and results travel on channels).
        broker) echo "~* +@all -@dangerous -select -move -copy -function" ;;
        # Celery (stage 04: the ingest web process, the worker, beat): its tasks (database
        # 3), its results (2) and its remote control (channels).
        celery) echo "~* &* +@all -@dangerous -function" ;;
        # The gateway: reads the registry (database 1); counts failed logins (LIMITS:*).
        gateway) echo "%R~registry:* ~LIMITS:* -@all +@connection +@read +@write +@scripting +scan -@dangerous -function" ;;
        # A service's registry entries (registry:<service>:<address>), its own only.
        registry-*) echo "~registry:${1#registry-}:* -@all +@connection +set +get +del -@dangerous" ;;
        *) return 1 ;;
    esac
}

{
    echo "user default on nopass resetkeys resetchannels -@all +ping"
    for variable in $(env | sed -n 's/^\(REDIS_PASSWORD_[A-Z0-9_]*\)=.*/\1/p' | sort); do
        user=$(echo "${variable#REDIS_PASSWORD_}" | tr 'A-Z_' 'a-z-')
        eval "password=\${$variable}"
        case "$password" in
            "" | *[!A-Za-z0-9_-]*)
                echo "redis-users: $variable must be letters, digits, - and _ only (it goes into URLs)" >&2
                exit 1 ;;
        esac
        if ! role=$(rights "$user"); then
            echo "redis-users: $variable names the user $user, who has no role here" >&2
            exit 1
        fi
        hash=$(printf '%s' "$password" | sha256sum | cut -d ' ' -f 1)
        echo "user $user on #$hash resetkeys resetchannels $role"
    done
} > "$acl"

exec redis-server "$@" --aclfile "$acl"

# The front: nginx with the project's config, its error page and the app's static files.
# Build from the repository root (the static files live in the shared package):
#   docker build -f docker/nginx.Dockerfile -t workshop-nginx .

# Pinned by tag and by digest. 1.27.3 or later: `resolve` on upstream servers.
FROM nginx:1.27.5-alpine@sha256:65645c7bb6a0661892a8b03b89d0743208a18dd2f3f17a54ef4b76fb8e2f2a10

# The image's start script renders templates/*.template into conf.d/ with envsubst; the
# filter keeps it to our two variables, so nginx's own $variables stay as they are.
ENV NGINX_ENVSUBST_FILTER="^(NGINX_LISTEN|UPSTREAM_SERVERS)$" \
    NGINX_LISTEN=8080

COPY docker/nginx/nginx.conf /etc/nginx/nginx.conf
COPY docker/nginx/templates/ /etc/nginx/templates/
COPY docker/nginx/50x.html /etc/nginx/errors/50x.html
COPY workshop/web/static/ /etc/nginx/static/

# Unprivileged: the rendered site goes to conf.d/, which the nginx user must own.
RUN rm -f /etc/nginx/conf.d/default.conf \
    && chown nginx:nginx /etc/nginx/conf.d
USER 101:101

EXPOSE 8080

# Alpine has BusyBox wget, no curl.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/nginx-health"]

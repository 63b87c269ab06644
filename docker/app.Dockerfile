# The Python image: the shared `workshop` package, the tooling, and one stage's folder.
# Every process of the stage (front door, REST API, services) runs from this one image;
# the compose file picks each container's command, as each line of the stage's Procfile does.
#
# Build from the repository root (the shared package is copied once, for every stage):
#   docker build -f docker/app.Dockerfile --build-arg STAGE=03-services -t workshop-app:03 .

# Pinned by tag and by digest: a tag can be pushed again, a digest cannot.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

# --- wheels: every runtime package as the lock pins it, checked against its hashes ----------
# The lock leaves pip nothing to resolve (--no-deps), so the pip this image ships installs it
# as a newer one would (tests/install/test_lock.py installs it with that pip).
FROM ${PYTHON_IMAGE} AS wheels

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src

COPY requirements/build.txt requirements/runtime.txt requirements/
# setuptools from the lock builds what ships as source only (Eve's `events`) and the project.
RUN pip install --require-hashes --no-deps -r requirements/build.txt \
    && pip wheel --require-hashes --no-deps --no-build-isolation --wheel-dir /wheels \
       -r requirements/runtime.txt

COPY pyproject.toml README.md ./
# The shared package, the embedded MongoDB (a container without MONGO_URL runs on it), and
# the tooling (the `workshop` command the project installs: the stages never import it,
# but `workshop doctor` or `workshop logs` may help inside).
COPY workshop/ workshop/
COPY tooling/ tooling/
COPY embedded_mongo/ embedded_mongo/
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# --- the runtime: the wheels installed, nothing to build with -------------------------------
FROM ${PYTHON_IMAGE}

ARG STAGE=01-monolith

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PORT=8000

WORKDIR /app

# Only the runtime lock: no dev or bench extras. The wheels were checked against the lock's
# hashes above; mounted, not copied, so they leave no layer behind.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    pip install --no-index --no-deps /wheels/*.whl

# The stage's own packages (front, restapi, gateway, chassis, services): the Procfile's
# command imports them from this folder (gunicorn --chdir, uvicorn --app-dir, celery
# --workdir), as `workshop up` does.
COPY ${STAGE}/ ${STAGE}/

# An unprivileged user; it owns nothing in the image, so the code is read-only to it.
RUN groupadd --system --gid 10001 workshop \
    && useradd --system --uid 10001 --gid workshop --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin workshop
USER 10001:10001

EXPOSE 8000

# Alive means the process answers /healthz (slim has no curl: Python's urllib does it). A
# process with no HTTP server (04's Celery worker) gets its own check in the compose file.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/healthz', timeout=4)"]

# No default command: the compose file gives each container its own Procfile line.

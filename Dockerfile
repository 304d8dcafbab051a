# LatLab in a container: `docker run IMAGE <latlab command>`, e.g. `pipeline save`.
# compose.yaml builds it once for the pipeline's four services (docs/pipeline.md).
# The browser libraries (uPlot for the dashboard, Swagger UI and ReDoc for the API docs) come
# from the npm registry, pinned by package-lock.json; the wheel's build hook (hatch_build.py)
# takes the files the pages load from node_modules.
FROM node:20-slim AS assets
WORKDIR /assets
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --omit=dev --no-audit --no-fund

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package is built from: the work tree's .venv, node_modules and databases
# stay out. Redis support (redis-py) is a core dependency: no extra needed.
WORKDIR /build
COPY pyproject.toml README.md .gitignore hatch_build.py ./
COPY src ./src
COPY --from=assets /assets/node_modules ./node_modules
RUN pip install . && rm -rf /build

# A user of its own; /data is created here so that a named volume mounted on it (the
# writer's files) belongs to that user, not to root.
RUN useradd --create-home --uid 10001 latlab && mkdir /data && chown latlab:latlab /data
USER latlab
WORKDIR /home/latlab

ENTRYPOINT ["latlab"]
CMD ["--help"]

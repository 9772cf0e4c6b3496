# mailwarden: one image for the policy daemon and the operator.
#
#   docker build -t mailwarden .
#   docker run --read-only --tmpfs /tmp --network host mailwarden policyd --listen 127.0.0.1:7777 --store postgres://…
#   docker run … mailwarden operator …
#
# Runs as the numeric non-root user 65532 and writes nothing outside /tmp, so it works with a
# read-only root filesystem. No compilers and no HEALTHCHECK (Kubernetes probes /healthz and
# /readyz on --http-listen). NODE_IMAGE may name any image with Node 24 and npm on PATH.
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: compile the TypeScript sources to dist/ ----------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: tsc needs none, and the dev dependencies' native add-ons are not wanted.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# --- runtime dependencies only ----------------------------------------------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Type declarations and source maps of the dependencies are not needed to run (about 50 MB).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete

# --- final -------------------------------------------------------------------------------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production HOME=/tmp
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY crds ./crds
USER 65532:65532
ENTRYPOINT ["node", "/app/bin/mailwarden.js"]
CMD ["--help"]

# Frontdesk: one image, one process (aiohttp + aiogram + the outbox worker on one loop).
FROM python:3.11-slim AS build
WORKDIR /src
# A venv with the locked versions (requirements/runtime.txt, `make lock`), hash-checked wheels only,
# in a layer of its own that a change of code alone does not rebuild.
COPY requirements/runtime.txt requirements/runtime.txt
RUN python -m venv /venv \
 && /venv/bin/pip install --no-cache-dir --quiet --disable-pip-version-check --require-hashes \
    --only-binary :all: --requirement requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY miniapp ./miniapp
COPY models ./models
COPY services ./services
COPY locales ./locales
COPY webapp_static ./webapp_static
# The project itself, built by the locked setuptools, with nothing resolved or downloaded again; then
# its catalogs, compiled in the installed copy (-P: not the one in /src).
RUN /venv/bin/pip install --no-cache-dir --quiet --disable-pip-version-check --no-deps --no-build-isolation . \
 && /venv/bin/python -P -c "from bot.i18n import compile_catalogs; compile_catalogs()"
# OpenAI's tokenizer files, for exact token counts without a download at run time (tiktoken fetches
# them on first use). Like the packages above, this needs the network: a build that cannot reach it
# fails here rather than making an image that quietly estimates.
RUN TIKTOKEN_CACHE_DIR=/tiktoken /venv/bin/python -c "import tiktoken; [tiktoken.get_encoding(name) for name in ('o200k_base', 'cl100k_base')]"

FROM python:3.11-slim
# Production: ENCRYPTION_KEY must come with the environment (`python -m bot encryption-key` makes one); no demo
# chat at `/` (DEMO_SITE=true brings it back); /metrics only with METRICS_TOKEN.
ENV PATH=/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 APP_ENV=production \
    TIKTOKEN_CACHE_DIR=/opt/tiktoken \
    DATABASE_URL=sqlite:///data/frontdesk.sqlite3 HOST=0.0.0.0 PORT=8080
RUN useradd --system --uid 10001 --home /app frontdesk && mkdir -p /data /app && chown frontdesk /data /app
COPY --from=build /venv /venv
COPY --from=build /tiktoken /opt/tiktoken
COPY demo /app/demo
WORKDIR /app
USER frontdesk
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\", \"8080\")}/healthz', timeout=4)"
CMD ["python", "-m", "bot"]

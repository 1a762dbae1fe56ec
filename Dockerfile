# One image for every role: api, worker, scheduler, migrate.
FROM python:3.12-slim
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY sql ./sql
COPY taskstream ./taskstream
RUN pip install --no-cache-dir --no-deps .
ENV TASKSTREAM_LOG_FORMAT=json
ENTRYPOINT ["taskstream"]

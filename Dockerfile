# runledger: the API (`runledger serve`), projectors (`runledger project`) and migrations
# (`runledger migrate`) all run from this one image. See docs/configuration.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY events ./events
COPY projections ./projections
COPY services ./services
RUN pip install . -c requirements.lock \
    && useradd --system --uid 10001 --home-dir /var/lib/runledger --create-home runledger

USER runledger
WORKDIR /var/lib/runledger
ENV RUNLEDGER_DATA_DIR=/var/lib/runledger
EXPOSE 8000
ENTRYPOINT ["runledger"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

CREATE DATABASE dagster OWNER ingest;

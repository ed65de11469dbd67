"""Instance storages of the production profile (deploy/production/dagster.yaml)."""

"""The storage-motion domain: models, rules and services. Imports neither api/ nor workers/."""

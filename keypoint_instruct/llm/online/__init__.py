"""The online engine: many requests through one provider with concurrency, retries, rate limits and a spend cap."""

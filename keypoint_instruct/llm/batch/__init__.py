"""The OpenAI Batch API: submit requests as files, follow and collect the batches into the same store."""

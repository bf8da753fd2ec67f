"""Documents: collections of the person's files, read, chunked, embedded and searched locally."""

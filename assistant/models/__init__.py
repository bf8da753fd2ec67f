"""Models: what a GGUF file says (``gguf_info``, ``split_files``), the models installed here
(``library``), the Hugging Face Hub (``hub``) and our ``catalog``, downloads (``downloads``,
``download_queue``, and ``partials``, those an earlier run left unfinished), and whether a
model fits this machine (``fit``; ``fit_report`` for every variant of a repo)."""

"""This machine: memory, CPU and GPUs (``machine``), and the llama.cpp backend modules that can
use them (``backends``)."""

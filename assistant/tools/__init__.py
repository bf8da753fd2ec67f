"""Tools and structured output: JSON schemas as grammars the reply must follow."""

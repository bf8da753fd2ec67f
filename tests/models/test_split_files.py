"""The names of a split GGUF's parts, parsed and written in one place."""

from __future__ import annotations

from assistant.models.split_files import names_of_parts, part_names, split_info, whole_name


def test_parts_are_found_from_any_part() -> None:
    parts = ["Q-00001-of-00003.gguf", "Q-00002-of-00003.gguf", "Q-00003-of-00003.gguf"]
    assert split_info("dir/Q-00002-of-00003.GGUF") == (2, 3)
    assert whole_name("dir/Q-00002-of-00003.gguf") == "dir/Q.gguf"
    assert part_names("Q-00002-of-00003.gguf") == parts
    assert names_of_parts("Q.gguf", 3) == parts


def test_a_whole_file_is_its_own_only_part() -> None:
    assert split_info("model-Q4_K_M.gguf") is None
    assert whole_name("model-Q4_K_M.gguf") == "model-Q4_K_M.gguf"
    assert part_names("model-Q4_K_M.gguf") == ["model-Q4_K_M.gguf"]
    assert names_of_parts("m.gguf", 1) == ["m.gguf"]

"""The connection title the user gave is kept: only a ` · <version of ours>` suffix is ours to replace."""
from __future__ import annotations

from backend.labelstudio.version_sync import titled_with_version, user_title

V1 = "random-ram_plus-0123456789-abcdef012345:5d41402abc4b"
V2 = "ft1-random-ram_plus-9876543210-abcdef012345-bf16:7d793037a076"


def test_a_version_is_appended_and_a_later_one_replaces_only_it() -> None:
    first = titled_with_version("RAM tagger", V1)
    assert first == f"RAM tagger · {V1}"
    assert titled_with_version(first, V2) == f"RAM tagger · {V2}"
    assert titled_with_version(titled_with_version(first, V2), V2) == f"RAM tagger · {V2}"  # idempotent


def test_the_users_own_separators_and_words_stay() -> None:
    assert user_title("Shapes · team A") == "Shapes · team A"
    assert titled_with_version("Shapes · team A", V1) == f"Shapes · team A · {V1}"
    assert user_title("RAM · v2") == "RAM · v2"  # "v2" is no version of ours


def test_a_title_an_earlier_release_renamed_to_a_bare_version() -> None:
    assert user_title(V1) == "ram-annotate"
    assert titled_with_version(V1, V2) == f"ram-annotate · {V2}"

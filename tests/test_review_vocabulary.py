"""Label mapping: project names onto RAM tags (hand-checked cases)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ram_model.review import build_label_mapping, load_synonyms, normalize_tag

RAM = [
    "dog",
    "cat",
    "traffic light",
    "t-shirt",
    "person",
    "knife",
    "berry",
    "bus",
    "short",
    "shorts",
    "car",
    "automobile",
]


class TestNormalizeTag:
    @pytest.mark.parametrize(
        "raw, expected",
        [
            ("Dog", "dog"),
            ("  traffic__light ", "traffic light"),
            ("T-Shirt", "t shirt"),
            ("a - b", "a b"),
            ("ＤＯＧ", "dog"),
        ],
    )
    def test_folds_case_separators_and_width(self, raw: str, expected: str) -> None:
        assert normalize_tag(raw) == expected

    def test_rejects_non_strings(self) -> None:
        with pytest.raises(TypeError, match="must be str"):
            normalize_tag(3)  # type: ignore[arg-type]


class TestBuildLabelMapping:
    def test_exact_normalized_plural_synonym_unmapped(self) -> None:
        mapping = build_label_mapping(
            ["dog", "Cats", "Traffic_Lights", "T Shirt", "people", "knives", "berries", "buses", "pet", "unicorn"],
            RAM,
            synonyms={"pet": ["dog", "cat"]},
        )
        assert mapping.how == (
            "exact",
            "plural",
            "plural",
            "normalized",
            "plural",
            "plural",
            "plural",
            "plural",
            "synonym",
            "unmapped",
        )
        assert mapping.ram_indices == ((0,), (1,), (2,), (3,), (4,), (5,), (6,), (7,), (0, 1), ())
        assert mapping.unmapped == ("unicorn",)

    def test_exact_name_beats_plural_form(self) -> None:
        mapping = build_label_mapping(["shorts", "short"], RAM)
        assert mapping.ram_indices == ((9,), (8,))
        assert mapping.how == ("exact", "exact")

    def test_synonym_overrides_an_existing_match_and_keys_are_normalised(self) -> None:
        mapping = build_label_mapping(["Car"], RAM, synonyms={"car ": ["automobile", "car"]})
        assert mapping.ram_indices == ((11, 10),)
        assert mapping.how == ("synonym",)
        assert mapping.ram_index_of("Car") == 11

    def test_unknown_synonym_target_is_an_error_with_suggestions(self) -> None:
        with pytest.raises(ValueError, match=r"'doge'.*not a RAM tag.*did you mean \['dog'\]"):
            build_label_mapping(["pet"], RAM, synonyms={"pet": "doge"})

    def test_unused_synonyms_are_reported(self) -> None:
        mapping = build_label_mapping(["dog"], RAM, synonyms={"kitty": "cat"})
        assert mapping.report()["unused_synonyms"] == ["kitty"]

    def test_duplicate_labels_rejected(self) -> None:
        with pytest.raises(ValueError, match="repeated"):
            build_label_mapping(["dog", "dog"], RAM)

    def test_chinese_names_match(self) -> None:
        zh = ["狗", "猫"] + [f"x{i}" for i in range(len(RAM) - 2)]
        mapping = build_label_mapping(["猫"], RAM, ram_names_zh=zh)
        assert mapping.ram_indices == ((1,),)

    def test_report_is_json_able_and_names_tags(self) -> None:
        mapping = build_label_mapping(["Dogs", "pet", "unicorn"], RAM, synonyms={"pet": ["dog", "cat"]})
        report = json.loads(json.dumps(mapping.report()))
        assert report["mapped"]["Dogs"] == {"ram_tags": ["dog"], "ram_indices": [0], "how": "plural"}
        assert report["mapped"]["pet"]["ram_tags"] == ["dog", "cat"]
        assert report["unmapped"] == ["unicorn"]

    def test_digest_changes_with_the_mapping_only(self) -> None:
        a = build_label_mapping(["dog", "cat"], RAM)
        assert a.digest == build_label_mapping(["dog", "cat"], RAM).digest
        assert a.digest != build_label_mapping(["dog", "cat"], RAM, synonyms={"cat": "dog"}).digest
        assert len(a.digest) == 12

    def test_ram_index_of(self) -> None:
        mapping = build_label_mapping(["Dog", "unicorn"], RAM)
        assert mapping.ram_index_of("Dog") == 0
        assert mapping.ram_index_of("dog") == 0  # normalised lookup
        assert mapping.ram_index_of("unicorn") is None
        with pytest.raises(KeyError, match="not a project label"):
            mapping.ram_index_of("horse")


class TestProjectArrays:
    def test_project_probs_takes_max_and_nan_for_unmapped(self) -> None:
        mapping = build_label_mapping(["pet", "car", "unicorn"], RAM, synonyms={"pet": ["dog", "cat"]})
        probs = np.zeros((2, len(RAM)), dtype=np.float32)
        probs[0, [0, 1, 10]] = [0.2, 0.7, 0.4]
        probs[1, [0, 1, 10]] = [0.9, 0.1, 0.0]
        out = mapping.project_probs(probs)
        assert out.dtype == np.float32
        np.testing.assert_allclose(out[:, :2], [[0.7, 0.4], [0.9, 0.0]])
        assert np.isnan(out[:, 2]).all()

    def test_project_probs_shape_error(self) -> None:
        mapping = build_label_mapping(["dog"], RAM)
        with pytest.raises(ValueError, match=r"\(N, 12\)"):
            mapping.project_probs(np.zeros((3, 5)))

    def test_project_thresholds_takes_min(self) -> None:
        mapping = build_label_mapping(["pet", "unicorn"], RAM, synonyms={"pet": ["dog", "cat"]})
        thresholds = np.full(len(RAM), 0.8)
        thresholds[1] = 0.65
        out = mapping.project_thresholds(thresholds)
        assert out[0] == pytest.approx(0.65)
        assert np.isnan(out[1])


class TestLoadSynonyms:
    def test_json_and_yaml(self, tmp_path: Path) -> None:
        (tmp_path / "s.json").write_text(json.dumps({"pet": ["dog", "cat"], "auto": "car"}))
        (tmp_path / "s.yaml").write_text("pet:\n  - dog\n  - cat\nauto: car\n")
        expected = {"pet": ["dog", "cat"], "auto": ["car"]}
        assert load_synonyms(tmp_path / "s.json") == expected
        assert load_synonyms(tmp_path / "s.yaml") == expected

    def test_empty_yaml_is_empty_mapping(self, tmp_path: Path) -> None:
        (tmp_path / "s.yml").write_text("")
        assert load_synonyms(tmp_path / "s.yml") == {}

    @pytest.mark.parametrize(
        "text, message",
        [
            ("[1, 2]", "must hold a mapping"),
            ('{"pet": []}', "non-empty list"),
            ('{"pet": [3]}', "not a tag name"),
            ('{"pet": ', "not valid json"),
        ],
    )
    def test_bad_files_say_what_is_wrong(self, tmp_path: Path, text: str, message: str) -> None:
        path = tmp_path / "s.json"
        path.write_text(text)
        with pytest.raises(ValueError, match=message) as info:
            load_synonyms(path)
        assert str(path) in str(info.value)

    def test_binary_file(self, tmp_path: Path) -> None:
        (tmp_path / "s.yaml").write_bytes(b"\xff\xfe\x00garbage")
        with pytest.raises(ValueError, match="not valid yaml"):
            load_synonyms(tmp_path / "s.yaml")

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="synonym file not found"):
            load_synonyms(tmp_path / "nope.yaml")

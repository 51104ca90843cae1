"""Labeling-config parsing and the project binding (mapping, thresholds, model_version)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from backend_fixtures import MULTI_CONFIG, SINGLE_CONFIG, TAXONOMY_CONFIG

from backend.errors import LabelConfigError
from backend.labelstudio.config import parse_label_config
from backend.labelstudio.project import build_project_model
from ram_model.weights.testing import TINY_TAGS

THRESHOLDS = np.full(len(TINY_TAGS), 0.5, dtype=np.float32)


def bind(config: str, thresholds: np.ndarray = THRESHOLDS, synonyms=None, version: str = "v1"):
    return build_project_model(
        config, ram_names=TINY_TAGS, ram_names_zh=None, ram_thresholds=thresholds, engine_version=version,
        file_synonyms=synonyms,
    )


class TestParse:
    def test_multiple_choices(self):
        (spec,) = parse_label_config(MULTI_CONFIG)
        assert (spec.name, spec.to_name, spec.kind, spec.data_key) == ("tags", "image", "choices", "image")
        assert spec.labels == ("Dogs", "Cat", "Car", "Unicorn")
        assert spec.multiple

    def test_single_choice_with_predicted_values(self):
        (spec,) = parse_label_config(SINGLE_CONFIG)
        assert not spec.multiple
        assert spec.synonyms == {"Pet": ("dog", "cat")}

    def test_taxonomy_paths(self):
        (spec,) = parse_label_config(TAXONOMY_CONFIG)
        assert spec.kind == "taxonomy"
        assert ("Animal", "Dog") in spec.paths and ("Vehicle", "Car") in spec.paths and ("Animal",) in spec.paths
        assert len(spec.paths) == len(spec.labels) == 6

    def test_alias_threshold_skip_and_non_image_controls(self):
        config = """<View><Image name="img" value="$photo"/><Text name="t" value="$text"/>
          <Choices name="a" toName="img" model_score_threshold="0.25"><Choice value="Dog" alias="d"/></Choices>
          <Choices name="skipped" toName="img" model_skip="true"><Choice value="Cat"/></Choices>
          <Choices name="sentiment" toName="t"><Choice value="pos"/></Choices></View>"""
        (spec,) = parse_label_config(config)
        assert (spec.name, spec.data_key, spec.values, spec.threshold) == ("a", "photo", ("d",), 0.25)

    @pytest.mark.parametrize(
        "config, fragment",
        [
            ("", "no labeling config"),
            ('<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>',
             "no <Image> tag"),
            ('<View><Image name="i" value="$i"/><Labels name="l" toName="i"><Label value="a"/></Labels></View>',
             "no <Choices> or <Taxonomy> control is bound to an <Image>"),
            ('<View><Image name="i" value="$i"/', "not valid XML"),
            ('<!DOCTYPE x [<!ENTITY e "boom">]><View><Image name="i" value="$i"/></View>', "DOCTYPE"),
            (('<View><Image name="i" value="$i"/><Choices name="c" toName="i" model_score_threshold="2">'
              '<Choice value="dog"/></Choices></View>'), "within [0, 1]"),
        ],
    )
    def test_unservable_configs_say_what_to_fix(self, config, fragment):
        with pytest.raises(LabelConfigError) as info:
            parse_label_config(config)
        assert fragment in info.value.message
        assert info.value.status_code == 422



class TestProjectModel:
    def test_mapping_reports_unmapped_once(self):
        project = bind(MULTI_CONFIG)
        (control,) = project.controls
        assert control.mapping.unmapped == ("Unicorn",)
        assert project.unmapped() == {"tags": ["Unicorn"]}
        assert control.report()["mapped"] == 3
        # "Dogs" reaches RAM's "dog" through the review core's plural rule.
        assert control.mapping.ram_index_of("Dogs") == TINY_TAGS.index("dog")
        assert np.isnan(control.thresholds[3])

    def test_predicted_values_win_over_mapping_file(self):
        project = bind(SINGLE_CONFIG, synonyms={"Pet": ["horse"], "Car": ["truck"]})
        control = project.controls[0]
        pet = control.mapping.ram_indices[control.mapping.column_of("Pet")]
        car = control.mapping.ram_indices[control.mapping.column_of("Car")]
        assert set(pet) == {TINY_TAGS.index("dog"), TINY_TAGS.index("cat")}
        assert car == (TINY_TAGS.index("truck"),)

    def test_bad_predicted_value_is_a_config_error(self):
        config = SINGLE_CONFIG.replace('predicted_values="dog,cat"', 'predicted_values="dgo"')
        with pytest.raises(LabelConfigError, match="dgo"):
            bind(config)

    def test_control_threshold_overrides_class_thresholds(self):
        config = MULTI_CONFIG.replace('choice="multiple"', 'choice="multiple" model_score_threshold="0.2"')
        control = bind(config).controls[0]
        assert np.allclose(control.thresholds[:3], 0.2)

    def test_model_version_follows_checkpoint_thresholds_and_mapping(self):
        base = bind(MULTI_CONFIG).model_version
        assert bind(MULTI_CONFIG).model_version == base  # stable
        assert bind(MULTI_CONFIG, version="v2").model_version != base
        other = THRESHOLDS.copy()
        other[0] = 0.4
        assert bind(MULTI_CONFIG, thresholds=other).model_version != base
        assert bind(MULTI_CONFIG, synonyms={"Unicorn": ["horse"]}).model_version != base
        assert bind(MULTI_CONFIG.replace('<Choice value="Car"/>', "")).model_version != base
        # Layout-only edits do not force Label Studio to re-predict.
        assert bind(MULTI_CONFIG.replace('showInLine="true"', "")).model_version == base
        json.dumps(bind(MULTI_CONFIG).controls[0].report())  # the /setup answer is JSON-able

"""Each layer builds the way `sam build <LayerLogicalId>` runs it, with nothing from `make build`.

SAM CLI (aws-lambda-builders' custom_make workflow) copies the layer's folder (its ContentUri: all of
layers/) to a scratch folder and runs `make --makefile <ContentUri>/Makefile build-<LayerLogicalId>`
there, with ARTIFACTS_DIR set and its own environment inherited: no LAYER_MK. This runs the same
command with `-n` (print, do not run: no wheels are downloaded) and checks the recipe is the whole
layer build, reading the scratch copy (tests/tooling/test_build_paths.py does the same inside the
folders a build container mounts)."""

from __future__ import annotations

import shutil

import pytest
from support.sam import layer_build_recipe

from local.template import Template

TEMPLATE = Template()
LAYERS = {
    logical_id: (TEMPLATE.path.parent / resource["Properties"]["ContentUri"]).resolve()
    for logical_id, resource in TEMPLATE.resources.items()
    if resource["Type"] == "AWS::Serverless::LayerVersion"
}


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_sam_build_of_the_layer_alone_finds_the_shared_rules(layer, tmp_path):
    source = LAYERS[layer]
    scratch = tmp_path / "scratch"
    shutil.copytree(source, scratch, ignore=shutil.ignore_patterns("__pycache__"))
    result = layer_build_recipe(source / "Makefile", layer, cwd=scratch, artifacts=tmp_path / "artifacts")
    assert result.returncode == 0, result.stderr
    recipe = result.stdout
    assert "--platform manylinux2014_aarch64" in recipe  # the template's default architecture
    assert "-r requirements.txt" in recipe and "compileall" in recipe
    if layer == "PaymentsLayer":
        assert f"{scratch}/lazy_reexports.py" in recipe

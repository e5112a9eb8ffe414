"""One format for validation errors: ``key [a.b]: message; fix: ...`` in every loader."""

import doctest

import pytest

import hra.core.fileio
import hra.core.validation
import npr9998
from hra.config import ConfigError, config_from_dict
from hra.policy.profiles import ProfileError, load_rule


@pytest.mark.parametrize("module", [hra.core.validation, hra.core.fileio])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def test_same_format_in_config_profiles_and_npr9998(tmp_path):
    with pytest.raises(ConfigError) as e1:
        config_from_dict({"run": {"years": [2025], "seeed": 1}})
    with pytest.raises(ProfileError) as e2:
        load_rule({"name": "x", "verhogd": {"statistic": "mean"}})
    bad = tmp_path / "cat.toml"
    bad.write_text('schema = "npr9998-catalogue/1"\ncatalogue_version = "x"\nillustrative = true\nextra_key = 1\n')
    with pytest.raises(npr9998.NPRInputError) as e3:
        npr9998.load_catalogue(bad)
    for err, key in ((e1, "run.seeed"), (e2, "verhogd"), (e3, "extra_key")):
        assert f"key [{key}]: Extra inputs are not permitted; fix: remove it or check its spelling" in str(err.value)
    assert "cat.toml" in str(e3.value)


def test_value_errors_show_the_value():
    with pytest.raises(ConfigError, match=r"key \[run.seed\]: .*\(got 'x'\); fix: correct the value"):
        config_from_dict({"run": {"years": [2025], "seed": "x"}})

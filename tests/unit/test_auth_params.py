"""Parameter values: integers are ASCII, in Java's int range or the command's bounds; pages stay
within what a database offset can hold; map indexes are short numbers."""
import pytest

from api.params import INT_MAX, MAX_PAGE, Params
from orchestrator.errors import InvalidParameter, MalformedParameter


def params(**values):
    return Params("listVolumes", {k.lower(): v for k, v in values.items()})


@pytest.mark.parametrize("value", ["1_000", "١٢", " 1 2", "0x10", "1e3", "9" * 30, str(INT_MAX + 1), "-"])
def test_an_integer_that_java_would_not_parse_or_that_overflows_is_refused_naming_the_parameter(value):
    with pytest.raises(InvalidParameter) as err:
        params(wait=value).integer("wait")
    assert "wait" in err.value.text


def test_integers_in_range_are_read():
    assert params(wait="+42").integer("wait") == 42
    assert params(wait="-7").integer("wait", minimum=-10) == -7


def test_a_page_beyond_the_maximum_is_refused():
    assert params(page=str(MAX_PAGE), pagesize="500").paging() == ((MAX_PAGE - 1) * 500, 500)
    with pytest.raises(InvalidParameter):
        params(page=str(MAX_PAGE + 1), pagesize="500").paging()


@pytest.mark.parametrize("name", ["migrateto[1234567890].volume", "migrateto[١].volume",
                                  "migrateto[0][1].volume", "migrateto[0].a.b"])
def test_malformed_map_parameters_get_430(name):
    p = Params("migrateVirtualMachineWithVolume", {name: "x"})
    with pytest.raises(MalformedParameter):
        p.map("migrateto")


def test_booleans_are_true_only_for_true_in_any_case_as_in_cloudstack():
    assert params(x="TRUE").boolean("x") and not params(x="yes").boolean("x")

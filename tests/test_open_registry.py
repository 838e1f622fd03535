"""The registry is open, the paper's pool is not: adding a family at run time.

A family registered at run time (``tests/extra_family.py``: a kernel and a
registry entry, nothing else) is picked up by the contract tests, the stress
protocol, the report and the benchmarks, while every paper default (the
pool of RampCorrupt and the strategies, the stress protocol, the severity grid)
stays the paper's. A grep keeps counts of the paper's protocol out of the code.
"""

from __future__ import annotations

import dataclasses
import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest
import torch
import torchio as tio

import torchio_ramp as tr
from tests import extra_family
from tests.prep_fixtures import prepare_phantoms
from torchio_ramp.cli_options import family_names
from torchio_ramp.families import FAMILIES
from torchio_ramp.families import FAMILY_NAMES
from torchio_ramp.families import PAPER_FAMILIES
from torchio_ramp.families import check_families
from torchio_ramp.families import register_family
from torchio_ramp.families import severity_grid
from torchio_ramp.families import unregister_family
from torchio_ramp.operators import SEVERITY_LEVELS
from torchio_ramp.pipelines import ARTIFACT_FAMILIES
from torchio_ramp.pipelines import STRATEGIES
from torchio_ramp.stress.protocol import StressProtocol
from torchio_ramp.stress.report import write_report
from torchio_ramp.stress.runner import run_stress_test
from torchio_ramp.stress.store import load_results

ROOT = Path(__file__).resolve().parents[1]
NAME = extra_family.NAME


@pytest.fixture
def quantization():
    """Register the extra family for one test; the registry is restored after."""
    before = dict(FAMILIES)
    with extra_family.registered() as operator:
        assert NAME in FAMILIES
        yield operator
    assert before == FAMILIES and list(FAMILIES) == list(before)


def _corruption_pools(transform) -> list[tuple[str, ...]]:
    """``families`` of every RampCorrupt inside a (composite) transform."""
    if isinstance(transform, tr.RampCorrupt):
        return [transform.families]
    children = getattr(transform, 'transforms', [])
    children = children.values() if isinstance(children, dict) else children
    return [pool for child in children for pool in _corruption_pools(child)]


def test_every_paper_default_is_unchanged_by_a_new_family(quantization):
    assert FAMILY_NAMES is PAPER_FAMILIES and NAME not in PAPER_FAMILIES
    assert check_families(None) == PAPER_FAMILIES
    assert tr.RampCorrupt().families == PAPER_FAMILIES
    assert tr.BatchRampCorrupt().sampler.families == PAPER_FAMILIES
    assert StressProtocol().families == PAPER_FAMILIES
    assert severity_grid() == [
        (f, level) for f in PAPER_FAMILIES for level in SEVERITY_LEVELS
    ]
    pools = {name: _corruption_pools(tr.strategy(name)) for name in STRATEGIES}
    assert pools['ramp'] == pools['corruption'] == [PAPER_FAMILIES]
    assert pools['artifact'] == [ARTIFACT_FAMILIES]
    assert pools['baseline'] == pools['geometric'] == []
    # draws of the default sampler never reach the new family
    torch.manual_seed(0)
    drawn = {f for _ in range(300) for f in tr.RampCorrupt().get_params()}
    assert drawn == set(PAPER_FAMILIES)


def test_the_new_family_can_be_named_wherever_a_family_is_accepted(quantization):
    assert family_names(None, None, (f'blur,{NAME}',)) == ('blur', NAME)
    corrupt = tr.RampCorrupt(families=[*PAPER_FAMILIES, NAME])
    assert corrupt.num_corruptions == (2, 4)
    # the pool may now be larger than the paper's: k up to its size
    size = len(PAPER_FAMILIES) + 1
    every = tr.RampCorrupt(families=[*PAPER_FAMILIES, NAME], num_corruptions=size)
    torch.manual_seed(0)
    assert sorted(every.get_params()) == sorted([*PAPER_FAMILIES, NAME])
    subject = tio.Subject(ct=tio.ScalarImage(tensor=torch.rand(1, 8, 8, 8)))
    out = tr.RandomCorruption(NAME, step=(0.25, 0.25))(subject)
    assert set(out.ct.data.unique().tolist()) <= {0.0, 0.25, 0.5, 0.75, 1.0}
    replayed = out.get_composed_history()(subject)
    assert torch.equal(replayed.ct.data, out.ct.data)
    with pytest.raises(ValueError, match="'quantization' is already registered"):
        register_family(quantization)


def test_unregistering_is_refused_for_the_papers_families_and_unknown_names():
    with pytest.raises(ValueError, match="'stripe' is one of the paper's families"):
        unregister_family('stripe')
    with pytest.raises(ValueError, match="no corruption family 'fog'"):
        unregister_family('fog')
    duplicate = dataclasses.replace(FAMILIES['blur'])
    with pytest.raises(ValueError, match="'blur' is already registered"):
        register_family(duplicate)


@pytest.fixture(scope='module')
def phantoms(tmp_path_factory) -> Path:
    """Two 16^3 phantoms prepared by ramp-prep, both in the test split."""
    root = tmp_path_factory.mktemp('open-registry')
    return prepare_phantoms(root, 2, '16,16,16')


def _threshold_model(image: torch.Tensor) -> torch.Tensor:
    """Liver where the normalised intensity is above the median, else background."""
    return (image[0] > image[0].median()).long()


def test_stress_protocol_and_report_pick_up_the_new_family(
    quantization, phantoms, tmp_path
):
    protocol = StressProtocol(families=['blur', NAME], levels=[0.05, 0.25])
    assert [s.family for s in protocol.corrupted_settings] == ['blur'] * 2 + [NAME] * 2
    out = tmp_path / 'run'
    run_stress_test(_threshold_model, phantoms, out, protocol=protocol, name='m')
    results = load_results(out)
    assert results.complete
    assert [s.family for s in results.settings] == ['clean', *['blur'] * 2, *[NAME] * 2]
    report = write_report([results], tmp_path / 'report', resamples=50)
    text = report.read_text()
    assert 'Quantization' in text  # the family's title from the registry
    assert len(list(report.parent.glob('*.png'))) == 4


def test_benchmarks_pick_up_the_new_family(quantization, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / 'benchmarks'))
    loaded = set(sys.modules)
    try:
        import run as benchmarks

        cases = {case.name: case for case in benchmarks.operator_cases()}
        case = cases[NAME]
        assert case.reference is None and case.torchio is None
        assert case.parameters == {'step': pytest.approx(0.06)}
        config = dataclasses.replace(benchmarks.QUICK, shape=(16, 16, 16), repeats=1)
        image = torch.rand(1, *config.shape)
        result = benchmarks.measure_operator(case, image, config)
        table = benchmarks.operators_table([result], {}, config)
        (row,) = [line for line in table.splitlines() if line.startswith(f'| {NAME}')]
        cells = [cell.strip() for cell in row.strip('|').split('|')]
        assert float(cells[1]) > 0  # the kernel was timed
        assert cells[4] == '-' and cells[7] == '-'  # no plain-torch reference
    finally:
        # forget only the benchmark scripts: torch's own lazily imported modules
        # (torch._inductor registers operator libraries once per process) stay
        benchmarks_dir = str(ROOT / 'benchmarks')
        for module in set(sys.modules) - loaded:
            path = getattr(sys.modules[module], '__file__', None) or ''
            if path.startswith(benchmarks_dir):
                del sys.modules[module]


def test_contract_tests_are_parametrised_over_a_family_added_before_collection():
    """Run the kernel, transform and input-check contracts with the family added."""
    completed = subprocess.run(
        [
            sys.executable,
            '-m',
            'pytest',
            '-p',
            'tests.extra_family',
            '-p',
            'no:cacheprovider',
            '-v',
            '-k',
            NAME,
            'tests/test_kernels_contract.py',
            'tests/test_transforms_contract.py',
            'tests/test_faults_inputs.py',
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = completed.stdout
    assert completed.returncode == 0, output[-3000:] + completed.stderr[-2000:]
    passed = [
        line
        for line in output.splitlines()
        if line.endswith('PASSED') or ' PASSED ' in line
    ]
    for test in (
        f'test_output_contract[{NAME}-low-3d]',
        f'test_deterministic_operators_ignore_the_generator[{NAME}]',
        f'test_level_zero_is_identity_when_every_parameter_clamps_to_zero[{NAME}]',
        f'test_batch_accepts_parameter_tensors[{NAME}]',
        f'test_history_replays_bit_for_bit[RandomCorruption[{NAME}]]',
        f'test_label_maps_are_bit_identical[RandomCorruption[{NAME}]]',
        f'test_pickle_round_trip[RandomCorruption[{NAME}]]',
        f'test_every_kernel_refuses_bad_input[{NAME}-nan]',
        f'test_corruption_transforms_refuse_bad_input[{NAME}-hu]',
    ):
        assert any(test in line for line in passed), test
    assert len(passed) >= 40, len(passed)
    assert not re.search(r'\b(failed|error)\b', output.splitlines()[-1])


# No count of the paper's protocol outside the pool ------------------------------

COUNTS = {'13', '65', '66'}
"""Families of the paper, its settings, and settings with the clean volume."""

POOL_FILES = {'torchio_ramp/families.py', 'tests/test_registry.py'}
"""The paper's pool and the test that checks it against the paper."""

NOT_COUNTS = {
    ('tests/test_kernels_reference.py', '13'): 'odd image sizes, e.g. (2, 13, 7, 5)',
    ('tests/test_batch.py', '65'): 'one of a list of arbitrary seeds',
    ('tests/test_distance_kernels.py', '13'): 'a 2-D mask shape, (13, 4)',
}
"""Literals that are not counts of families or settings (with the reason)."""


def _python_files() -> list[Path]:
    folders = ('torchio_ramp', 'prep', 'benchmarks', 'examples', 'tests')
    return sorted(p for folder in folders for p in (ROOT / folder).rglob('*.py'))


def _count_literals(path: Path) -> list[tuple[int, str]]:
    """Integer literals 13/65/66, and the numbers in prose (not 'Table 13')."""
    found = []
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    for token in tokens:
        if token.type == tokenize.NUMBER and token.string in COUNTS:
            found.append((token.start[0], token.string))
        elif token.type in (tokenize.STRING, tokenize.COMMENT):
            text = re.sub(r'Tables? \d+(-\d+)?', '', token.string)
            for match in re.finditer(r'(?<![\w.])(13|65|66)(?![\w.])', text):
                found.append((token.start[0], match[1]))
    return found


def test_no_count_of_the_papers_protocol_outside_its_pool():
    offenders = []
    for path in _python_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative in POOL_FILES or path.name == Path(__file__).name:
            continue
        for line, number in _count_literals(path):
            if (relative, number) not in NOT_COUNTS:
                offenders.append(f'{relative}:{line}: {number}')
    assert not offenders, (
        'derive counts from torchio_ramp.families.PAPER_FAMILIES (or add a'
        ' literal that is not a count to NOT_COUNTS with its reason): '
        + ', '.join(offenders)
    )

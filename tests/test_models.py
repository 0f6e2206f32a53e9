import pytest
import torch

from elastic.data import DATASETS
from elastic.errors import UnknownName
from elastic.models import ARCHS, arch_config, build_model, remove_blocks
from elastic.profile import profile_model
from elastic.registry import Registry

# Every registered architecture with every dataset of its image size.
PAIRS = [(a, d) for a in ARCHS for d in DATASETS if ARCHS.get(a).family == DATASETS.get(d).family]


@pytest.mark.parametrize("arch,dataset", PAIRS)
def test_forward_shape(arch, dataset):
    spec = DATASETS.get(dataset)
    model = build_model(arch, spec.num_classes).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, spec.input_size, spec.input_size))
    assert out.shape == (2, spec.num_classes)


def test_every_dataset_has_an_architecture():
    assert {DATASETS.get(d).family for d in DATASETS} <= {ARCHS.get(a).family for a in ARCHS}


@pytest.mark.parametrize("arch,macs,params", [("resnet20", 41e6, 0.27e6), ("resnet56", 126e6, 0.86e6)])
def test_cifar_resnet_sizes_match_the_paper(arch, macs, params):
    prof = profile_model(build_model(arch, 10), (3, 32, 32))
    assert prof.macs == pytest.approx(macs, rel=0.02)
    assert prof.params == pytest.approx(params, rel=0.02)


def test_projection_shortcuts_only_where_shape_changes():
    model = build_model("resnet56", 10)
    with_projection = [n for n, m in model.named_modules() if n.endswith("downsample")]
    assert with_projection == ["layer2.0.downsample", "layer3.0.downsample"]


def test_class_count_comes_from_the_dataset():
    assert build_model("resnet20", 100).fc.out_features == 100
    assert build_model("vgg16", 100).classifier.out_features == 100


def test_default_config_is_empty_and_rebuilds():
    model = build_model("vgg16", 10)
    assert arch_config(model, "vgg16", 10) == {"removed_blocks": [], "shapes": {}}


def test_config_round_trip_for_a_thinned_and_shortened_network():
    config = {"removed_blocks": ["layer1.2", "layer3.1"],
              "shapes": {"layer2.0.conv1": [16, 20], "layer2.0.bn1": [20], "layer2.0.conv2": [20, 32]}}
    model = build_model("resnet20", 10, config)
    assert arch_config(model, "resnet20", 10) == config
    assert "layer1.2" not in dict(model.named_modules())
    assert "layer1.1" in dict(model.named_modules())  # siblings keep their names
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_removing_a_block_keeps_state_dict_names():
    model = build_model("resnet20", 10)
    before = model.state_dict()
    remove_blocks(model, ["layer2.1"])
    after = model.state_dict()
    assert set(after) == {k for k in before if not k.startswith("layer2.1.")}


def test_registry_refuses_duplicates_and_names_unknowns():
    reg: Registry[int] = Registry("thing")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", 2)
    with pytest.raises(UnknownName, match="unknown thing 'b'; known: a"):
        reg.get("b")
    with pytest.raises(UnknownName, match="known:"):
        build_model("resnet1000", 10)


def dependency_graph_groups(model: torch.nn.Module, input_size: int) -> list[tuple[set[str], set[str]]]:
    """Torch-Pruning's coupled-channel groups of `model`, the classifier's
    outputs held fixed: (layers whose outputs, layers whose inputs) per group,
    in the call order of each group's first layer."""
    import torch_pruning as tp

    modules = dict(model.named_modules())
    names = {module: name for name, module in modules.items()}
    order = {name: i for i, name in enumerate(
        layer.name for layer in profile_model(model, (3, input_size, input_size)).layers)}
    classifier = [m for m in modules.values() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))][-1]
    with torch.enable_grad():
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.zeros(1, 3, input_size,
                                                                                         input_size))
    groups = []
    for group in graph.get_all_groups(ignored_layers=[classifier],
                                      root_module_types=(torch.nn.Conv2d, torch.nn.Linear)):
        outs, ins = set(), set()
        for dep, _ in group:
            if dep.target.module in names:
                (outs if graph.is_out_channel_pruning_fn(dep.handler) else ins).add(names[dep.target.module])
        groups.append((outs, ins))
    return sorted(groups, key=lambda g: min(order[n] for n in g[0]))


@pytest.mark.parametrize("arch", ARCHS.names())
def test_the_channel_analysis_agrees_with_torch_pruning(arch):
    """One analysis of coupled channels (elastic.methods.channels) serves
    complexity pruning and prune-and-grow; on every registered architecture
    it finds exactly the groups Torch-Pruning's dependency graph finds."""
    from elastic.methods.channels import channel_structure

    model = build_model(arch, 10)
    ours = channel_structure(model)
    found = [({layer.name for layer in ours.layers if layer.out_group == g}
              | {name for name, group in ours.norms if group == g},
              {layer.name for layer in ours.layers if layer.in_group == g}) for g in range(len(ours.sizes))]
    assert found == dependency_graph_groups(model, ARCHS.get(arch).input_size)
    assert ours.heads == (next(n for n, m in reversed(list(model.named_modules()))
                               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))),)

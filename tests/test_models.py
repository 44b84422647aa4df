import pytest
import torch

from kdtrain.errors import UserError
from kdtrain.models.registry import create_model, list_models

torch.set_num_threads(1)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list_models())
def test_forward_backward(name, channels):
    model = create_model(name, num_classes=7, in_channels=channels)
    x = torch.randn(2, channels, 28, 28)
    out = model(x)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_torchvision_model_by_name_grey():
    model = create_model("tv:resnet18", num_classes=5, in_channels=1)
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 5)
    assert "conv1.weight" in model.state_dict()  # torchvision's key names kept


def test_unknown_models():
    with pytest.raises(UserError, match="unknown model"):
        create_model("nope", 10)
    with pytest.raises(UserError, match="torchvision"):
        create_model("tv:nope", 10)

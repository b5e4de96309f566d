"""The training recipe's SpeakerBrain: forward, AAM loss and stage sums."""

import speechbrain as sb
import torch
from helpers import training_recipe
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.lobes.models.ECAPA_TDNN import Classifier
from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper


class Mean(torch.nn.Module):
    """Embeds a waveform by its mean through a linear layer."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(1, 3)

    def forward(self, wavs, lengths=None):
        return self.lin(wavs.mean(1, keepdim=True)).unsqueeze(1)


def _brain():
    torch.manual_seed(0)
    return training_recipe().SpeakerBrain(
        modules={"embedding_model": Mean(),
                 "classifier": Classifier(3, out_neurons=2)},
        hparams={"compute_cost": LogSoftmaxWrapper(
            AdditiveAngularMargin(margin=0.2, scale=30))},
        run_opts={"device": "cpu"},
    )


def _batch():
    return PaddedBatch([
        {"sig": torch.randn(160), "spk_id_encoded": torch.tensor([0])},
        {"sig": torch.randn(160), "spk_id_encoded": torch.tensor([1])},
    ])


def test_forward_loss_and_sums():
    brain = _brain()
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    out = brain.compute_forward(_batch(), sb.Stage.TRAIN)
    loss = brain.compute_objectives(out, _batch(), sb.Stage.TRAIN)
    assert out[0].shape == (2, 1, 2) and loss.dim() == 0
    sums = brain.stage_sums[sb.Stage.TRAIN]
    assert sums[2].item() == 2.0
    assert torch.isclose(sums[0], loss.double() * 2)


def test_non_finite_loss_is_left_out_of_the_sums():
    brain = _brain()
    brain.on_stage_start(sb.Stage.TRAIN, 1)
    out = brain.compute_forward(_batch(), sb.Stage.TRAIN)
    logits, lengths = out
    brain.compute_objectives((logits * float("nan"), lengths), _batch(),
                             sb.Stage.TRAIN)
    assert brain.stage_sums[sb.Stage.TRAIN].tolist() == [0.0, 0.0, 0.0]

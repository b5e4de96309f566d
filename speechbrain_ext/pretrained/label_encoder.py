"""The label encoder of a pretrained folder (speaker label of each row).

Authors
 * MR-RawNet SpeechBrain recipe contributors
"""

from speechbrain_ext.atomic_files import atomic_replace


def write_label_encoder(path, labels):
    """Writes a SpeechBrain ``CategoricalEncoder`` file, labels in order.

    Arguments
    ---------
    path : str
        Output file.
    labels : list of str
        Labels; the i-th gets index i.

    Returns
    -------
    str
        ``path``.

    Example
    -------
    >>> import os
    >>> from speechbrain.dataio.encoder import CategoricalEncoder
    >>> path = os.path.join(str(getfixture("tmp_path")), "label_encoder.txt")
    >>> _ = write_label_encoder(path, ["id1", "id2"])
    >>> enc = CategoricalEncoder()
    >>> enc.load(path)
    >>> enc.encode_label("id2")
    1
    """
    from speechbrain.dataio.encoder import CategoricalEncoder

    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate labels given for {path}")
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(labels)
    return atomic_replace(path, encoder.save)

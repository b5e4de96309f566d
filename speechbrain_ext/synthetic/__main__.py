"""``python -m speechbrain_ext.synthetic OUT [options]``: writes a corpus.

See :func:`speechbrain_ext.synthetic.corpus.main` for the options.

Authors
 * MR-RawNet recipe contributors
"""

import sys

from speechbrain_ext.synthetic.corpus import main

if __name__ == "__main__":
    sys.exit(main())

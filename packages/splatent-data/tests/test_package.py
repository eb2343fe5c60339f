import subprocess
import sys

import splatent_data


def test_imports_without_torch():
    code = "import sys, splatent_data; assert 'torch' not in sys.modules, 'splatent_data pulled torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api_is_exported():
    for name in splatent_data.__all__:
        assert hasattr(splatent_data, name), name

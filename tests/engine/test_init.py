import subprocess
import sys


def test_the_contract_types_import_without_loading_llama_cpp() -> None:
    code = (
        "import sys, runtime.engine as e; e.GenerationRequest(prompt='x');"
        "assert 'llama_cpp' not in sys.modules; e.BatchedEngine;"
        "assert 'llama_cpp' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

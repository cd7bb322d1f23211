"""Write the tiny ONNX models used by the inference tests (tests/data/*.onnx).

They are made here, from nothing but the `onnx` package, so anyone can regenerate and check
them: `.venv/bin/python scripts/make_test_models.py`.

- box3.onnx: input `image` float32 [1, 1, H, W] (H, W dynamic), output `smoothed`: a 3x3
  mean filter with zero padding. Its exact output is easy to compute independently.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = Path(__file__).resolve().parent.parent / "tests" / "data"


def box3() -> onnx.ModelProto:
    weights = numpy_helper.from_array(np.full((1, 1, 3, 3), 1.0 / 9.0, dtype=np.float32), "w")
    conv = helper.make_node("Conv", ["image", "w"], ["smoothed"], pads=[1, 1, 1, 1])
    graph = helper.make_graph(
        [conv],
        "box3",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, "H", "W"])],
        [helper.make_tensor_value_info("smoothed", TensorProto.FLOAT, [1, 1, "H", "W"])],
        initializer=[weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="scopepilot-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "box3.onnx"
    onnx.save(box3(), path)
    print(f"wrote {path} ({path.stat().st_size} bytes)")

#!/usr/bin/env python3
"""The baseline `wanwu serve` is measured against (benchmarks/serve_compare.py): the image
classification server every Flask + PyTorch tutorial shows. One process, Flask's threaded
server, one request = one image = one forward pass, torchvision's eval transform on a PIL image.
It is kept as the tutorials write it on purpose (no batching, no worker processes); the two
changes are in PyTorch's favour: `inference_mode` instead of `no_grad`, and the same number of
intra-op threads as wanwu gets.

    /usr/bin/python3 benchmarks/flask_server.py --weights resnet50.pth --port 8090 [--threads 2]

POST /predict with a multipart field `image` answers {"class_id", "prob"} like `wanwu serve`.
"""
import argparse
import io

import torch
import torchvision
import torchvision.transforms as T
from flask import Flask, jsonify, request
from PIL import Image


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", required=True, help="torchvision resnet50 state_dict (.pth)")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2, help="PyTorch intra-op threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model = torchvision.models.resnet50()
    model.load_state_dict(torch.load(args.weights))
    model.eval()
    transform = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(),
                           T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    app = Flask(__name__)

    @app.route("/health")
    def health():
        return jsonify({"status": "ok"})

    @app.route("/predict", methods=["POST"])
    def predict():
        if "image" not in request.files:
            return jsonify({"error": "no image"}), 400
        img = Image.open(io.BytesIO(request.files["image"].read())).convert("RGB")
        x = transform(img).unsqueeze(0)
        with torch.inference_mode():
            probs = torch.softmax(model(x), dim=1)[0]
        prob, cls = probs.max(0)
        return jsonify({"class_id": int(cls), "prob": float(prob)})

    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()

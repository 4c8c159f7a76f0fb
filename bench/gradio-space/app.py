"""The course's Gradio app, as a student deploys it to a Space: a
torchvision resnet18 fine-tuned on 3 actors, `model.pth` beside it.
bench/serving.py runs it too, with MODEL_PATH and GRADIO_SERVER_NAME/PORT set."""

import os

import gradio as gr
import torch
import torchvision
from torchvision import transforms

labels = ["Ada", "Bea", "Cleo"]
model = torchvision.models.resnet18(num_classes=len(labels))
model.load_state_dict(torch.load(os.environ.get("MODEL_PATH", "model.pth"), map_location="cpu"))
model.eval()
preprocess = transforms.Compose([
    transforms.Resize(256),
    transforms.CenterCrop(224),
    transforms.ToTensor(),
    transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
])


def predict(image):
    x = preprocess(image.convert("RGB")).unsqueeze(0)
    with torch.inference_mode():
        probabilities = torch.softmax(model(x)[0], dim=0)
    return {labels[i]: float(p) for i, p in enumerate(probabilities)}


demo = gr.Interface(fn=predict, inputs=gr.Image(type="pil"), outputs=gr.Label(num_top_classes=3))
demo.queue(default_concurrency_limit=8).launch(
    server_name=os.environ.get("GRADIO_SERVER_NAME", "0.0.0.0"),
    server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
)

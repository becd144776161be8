"""Classify an uploaded, photographed or gallery image against the ten classes or custom labels."""

import random

import pandas as pd
import streamlit as st

from streamlit_ui import client
from streamlit_ui.components import call, image, image_types, show_image


def low_confidence(ood: dict) -> str:
    """Why the API flagged the image, in words (model_api/README.md, `ood`)."""
    reasons = []
    if ood["unusual_image"]:
        reasons.append("it is unlike the images the model learned from (small photos of the ten CIFAR-10 classes)")
    if ood["no_label_fits"]:
        reasons.append("none of the labels fits it as well as a class fits its own photos")
    return "**None of these / low confidence**: " + " and ".join(reasons) + ". The ranking below is a guess."


st.title("Classify an image")
source = st.radio("Image from", ["Upload", "Camera", "Gallery"], horizontal=True, key="classify_source")

upload = gallery_id = item = None
if source == "Upload":
    file = st.file_uploader("Drop an image here", type=image_types(), key="classify_upload")
    upload = (file.name, file.getvalue()) if file else None
elif source == "Camera":
    shot = st.camera_input("Take a picture", key="classify_camera")
    upload = ("camera.jpg", shot.getvalue()) if shot else None
else:
    # Before the text box: a widget's value can only be set before it is drawn in this run.
    if st.button("Random gallery image", key="classify_random", icon=":material/casino:"):
        total = call("Counting the gallery…", client.gallery_page, 0, 1)["total"]
        if total == 0:
            st.warning("The gallery is empty: see the Model page for how to give the API a dataset.")
            st.stop()
        picked = call("Picking an image…", client.gallery_page, random.randrange(total), 1)["items"][0]
        st.session_state["classify_id"] = picked["id"]
    gallery_id = st.text_input("Gallery id", key="classify_id", placeholder="test-42").strip() or None

labels_text = st.text_input(
    "Custom labels, comma-separated (leave empty for the ten CIFAR-10 classes)",
    key="classify_labels",
    placeholder="a red car, a small bird, a cargo ship",
)
# Sent as typed: the API splits, drops blanks and duplicates, and explains what it refuses.
labels = labels_text.strip() or None
top_k = st.slider("How many labels to show", 1, 10, 5, key="classify_top_k")

if not upload and not gallery_id:
    st.info("Choose an image to classify.")
    st.stop()

# The API returns at most one prediction per label, so top_k needs no clamping here.
if upload:
    picture = upload[1]
    result = call("Classifying…", client.classify_upload, upload, labels, top_k)
else:
    item = call("Looking up the item…", client.gallery_item, gallery_id)
    result = call("Classifying…", client.classify_gallery, gallery_id, labels, top_k)
    picture = call("Loading image…", image, item["image_url"])
predictions = result["predictions"]

left, right = st.columns([1, 2])
with left:
    show_image(picture)
    if item:  # what the item is known to be, beside what the model thinks it is
        known = "true label" if item["source"] == "dataset" else "label given at upload"
        st.caption(f"{known}: **{item['label']}**" if item["label"] else "no label given at upload")
        if item["caption"]:
            st.caption(f"caption: {item['caption']}")
with right:
    best = predictions[0]
    if result["out_of_distribution"]:
        st.warning(low_confidence(result["ood"]), icon=":material/help:")
    guess = ", a guess" if result["out_of_distribution"] else ""
    st.subheader(f"{best['label']} ({best['score']:.0%}){guess}")
    st.bar_chart(pd.DataFrame(predictions), x="label", y="score", horizontal=True, sort="-score")
    if ood := result["ood"]:
        st.caption(
            f"Out-of-distribution scores: distance to the nearest class {ood['distance']:.1f} "
            f"(flagged above {ood['distance_threshold']:.1f}); best label's similarity "
            f"{ood['label_similarity']:.2f} (flagged below {ood['label_similarity_threshold']:.2f})."
        )

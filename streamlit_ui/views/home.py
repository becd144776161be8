"""What the app does, whether the API is ready, and the model card with its TEST metrics."""

import altair as alt
import pandas as pd
import streamlit as st

from streamlit_ui import client
from streamlit_ui.components import call, info

st.title("CLIP on CIFAR-10")
st.markdown(
    "A small CLIP trained contrastively on CIFAR-10 maps images and text into one embedding space. "
    "**Classify** scores an image against the ten classes or any labels you type (zero-shot); "
    "**Search** finds gallery images from a description or from another image; "
    "**Gallery** browses the searchable images and lets you add your own."
)

try:
    with st.spinner("Asking the API whether it is ready…"):
        client.ready()
    st.success("The API is ready.", icon=":material/check_circle:")
except client.ApiError as error:
    if error.status != 503:
        st.error(str(error), icon=":material/error:")
        st.stop()
    # Still loading: the model card below can already be read.
    st.warning(str(error), icon=":material/hourglass_top:")
    st.button("Check again", key="home_recheck")

card = call("Reading the model card…", info)
if not card["dataset_loaded"]:
    st.info(
        # The API's `dataset` says the cause ("unavailable: ..."); this page says what follows, once.
        f"The gallery holds only uploaded images. Dataset {card['dataset']}\n\n"
        "Start the API with `CIFAR10_DATA=/path/to/cifar10` (a local copy of the `uoft-cs/cifar10` parquet "
        "files) to search the 10,000 CIFAR-10 test images. Classifying uploads works either way.",
        icon=":material/info:",
    )

# The TEST report kept beside the checkpoint (`main.py --mode TEST --report CHECKPOINT/test_report.json`).
test = card["metrics"].get("test")
columns = st.columns(4)
columns[0].metric("Test accuracy (zero-shot)", f"{test['accuracy']:.1%}" if test else "not measured")
columns[1].metric("Gallery images", f"{card['gallery_size']:,}")
columns[2].metric("Embedding size", card["embedding_dim"])
columns[3].metric("Search", card["search"])
with st.expander("Architecture and checkpoint", icon=":material/memory:"):
    st.caption(f"`{card['model_name']}` · sha256 `{card['checkpoint_sha256']}`")
    st.json({"model": card["architecture"], "metrics": card["metrics"]}, expanded=2)

if not test:
    st.info("This checkpoint carries no TEST metrics yet: `python main.py --mode TEST` measures them.")
    st.stop()
st.subheader("Accuracy per class")
per_class = pd.DataFrame(test["per_class_accuracy"].items(), columns=["class", "accuracy"])
st.bar_chart(per_class, x="class", y="accuracy", horizontal=True, sort="-accuracy")

st.subheader("Confusion matrix")
classes = card["classes"]
cells = pd.DataFrame(
    [
        {"true": classes[row], "predicted": classes[column], "images": count}
        for row, counts in enumerate(test["confusion_matrix"])
        for column, count in enumerate(counts)
    ]
)
heatmap = (
    alt.Chart(cells)
    .mark_rect()
    .encode(
        x=alt.X("predicted:N", sort=classes),
        y=alt.Y("true:N", sort=classes),
        color=alt.Color("images:Q", scale=alt.Scale(scheme="blues")),
        tooltip=["true", "predicted", "images"],
    )
)
st.altair_chart(heatmap.properties(height=420), width="stretch")

"""Hydrogen drumkits: read `drumkit.xml` and write one.

Hydrogen has written three layouts over the years, all read here:
- 0.9.3: `<instrument><filename>` (one sample, no layers);
- 0.9.4+: `<instrument><layer><filename><min><max><gain><pitch>`;
- 1.x: layers inside `<instrumentComponent>`, and an XML namespace.
Velocities in the file are fractions 0..1; here they are MIDI 0..127.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from redrum_kit.errors import LibraryError


@dataclass
class H2Layer:
    path: Path
    velocity_low: int = 0
    velocity_high: int = 127
    gain: float = 1.0
    pitch: float = 0.0  # semitones


@dataclass
class H2Instrument:
    id: int
    name: str
    gain: float = 1.0
    mute_group: int = -1  # instruments of one group cut each other off (hi-hats)
    layers: list[H2Layer] = field(default_factory=list)


@dataclass
class H2Kit:
    name: str
    folder: Path
    info: str = ""
    author: str = ""
    license: str = ""
    instruments: list[H2Instrument] = field(default_factory=list)


def is_drumkit(folder: Path) -> bool:
    return (folder / "drumkit.xml").is_file()


def read_drumkit(folder: Path) -> H2Kit:
    """Parse `folder/drumkit.xml`; instruments without samples are left out."""
    xml_path = folder / "drumkit.xml"
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise LibraryError(f"{xml_path}: not a readable Hydrogen drumkit ({exc})") from None
    ns = root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""

    def text(node: ET.Element, tag: str, default: str = "") -> str:
        child = node.find(ns + tag)
        return child.text.strip() if child is not None and child.text else default

    def number(node: ET.Element, tag: str, default: float) -> float:
        try:
            return float(text(node, tag, str(default)))
        except ValueError:
            return default

    kit = H2Kit(name=text(root, "name", folder.name), folder=folder, info=text(root, "info"),
                author=text(root, "author"), license=text(root, "license"))
    for index, node in enumerate(root.iter(ns + "instrument")):
        inst = H2Instrument(id=int(number(node, "id", index)), name=text(node, "name", f"Instrument {index}"),
                            gain=number(node, "gain", 1.0), mute_group=int(number(node, "muteGroup", -1)))
        layer_nodes = list(node.iter(ns + "layer"))
        if layer_nodes:
            for layer in layer_nodes:
                filename = text(layer, "filename")
                if filename:
                    inst.layers.append(H2Layer(
                        path=folder / filename,
                        velocity_low=round(127 * min(max(number(layer, "min", 0.0), 0.0), 1.0)),
                        velocity_high=round(127 * min(max(number(layer, "max", 1.0), 0.0), 1.0)),
                        gain=number(layer, "gain", 1.0), pitch=number(layer, "pitch", 0.0)))
        elif text(node, "filename"):
            inst.layers.append(H2Layer(path=folder / text(node, "filename")))
        if inst.layers:
            kit.instruments.append(inst)
    return kit


def write_drumkit(kit: H2Kit) -> str:
    """The text of a `drumkit.xml` (0.9.x layout, which every Hydrogen since 2009 reads).

    Layer paths are written relative to `kit.folder` (Hydrogen wants the
    samples beside the xml).
    """
    out = ["<?xml version='1.0' encoding='UTF-8'?>", "<drumkit_info>",
           f" <name>{escape(kit.name)}</name>", f" <author>{escape(kit.author)}</author>",
           f" <info>{escape(kit.info)}</info>", f" <license>{escape(kit.license)}</license>",
           " <instrumentList>"]
    for inst in kit.instruments:
        out += ["  <instrument>", f"   <id>{inst.id}</id>", f"   <name>{escape(inst.name)}</name>",
                "   <volume>1</volume>", "   <isMuted>false</isMuted>", "   <pan_L>1</pan_L>",
                "   <pan_R>1</pan_R>", f"   <gain>{inst.gain:.6g}</gain>",
                f"   <muteGroup>{inst.mute_group}</muteGroup>"]
        for layer in inst.layers:
            out += ["   <layer>", f"    <filename>{escape(layer.path.name)}</filename>",
                    f"    <min>{layer.velocity_low / 127:.6g}</min>",
                    f"    <max>{layer.velocity_high / 127:.6g}</max>",
                    f"    <gain>{layer.gain:.6g}</gain>", f"    <pitch>{layer.pitch:.6g}</pitch>",
                    "   </layer>"]
        out.append("  </instrument>")
    out += [" </instrumentList>", "</drumkit_info>", ""]
    return "\n".join(out)

"""Language values as users send them, mapped to Whisper's language codes.

Clients send ISO-639-1 codes ('de'), English names ('German'), locales ('de-DE', 'pt_BR'), ISO-639-2/3 codes
('deu', 'ger'; subtitle tools use these) or 'auto'; Whisper knows its own codes ('jw' for Javanese).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pydantic_core import PydanticCustomError


def _whisper_tokenizer_module():
    """openai-whisper's tokenizer.py, which holds the language table, loaded on its own: importing
    `whisper.tokenizer` runs `whisper/__init__.py`, which imports torch (about 300 MiB in a faster-whisper
    worker that never uses it)."""
    package = importlib.util.find_spec("whisper")
    path = Path(package.origin).with_name("tokenizer.py")
    spec = importlib.util.spec_from_file_location("_whisper_language_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_table = _whisper_tokenizer_module()
LANGUAGES: dict[str, str] = _table.LANGUAGES  # code -> English name
TO_LANGUAGE_CODE: dict[str, str] = _table.TO_LANGUAGE_CODE  # names and aliases -> code

# ISO 639-2 (T and B) and 639-3 codes of the languages Whisper knows, where they differ from Whisper's own
# code (ISO 639-2 table, https://www.loc.gov/standards/iso639-2/php/code_list.php); plus retired 639-1 codes
ALPHA3 = dict(
    pair.split(":")
    for pair in """
    eng:en zho:zh chi:zh cmn:zh deu:de ger:de spa:es rus:ru kor:ko fra:fr fre:fr jpn:ja por:pt tur:tr pol:pl
    cat:ca nld:nl dut:nl ara:ar swe:sv ita:it ind:id hin:hi fin:fi vie:vi heb:he ukr:uk ell:el gre:el msa:ms
    may:ms ces:cs cze:cs ron:ro rum:ro dan:da hun:hu tam:ta nor:no nob:no nb:no tha:th urd:ur hrv:hr bul:bg
    lit:lt lat:la mri:mi mao:mi mal:ml cym:cy wel:cy slk:sk slo:sk tel:te fas:fa per:fa lav:lv ben:bn srp:sr
    aze:az slv:sl kan:kn est:et mkd:mk mac:mk bre:br eus:eu baq:eu isl:is ice:is hye:hy arm:hy nep:ne mon:mn
    bos:bs kaz:kk sqi:sq alb:sq swa:sw glg:gl mar:mr pan:pa sin:si khm:km sna:sn yor:yo som:so afr:af oci:oc
    kat:ka geo:ka bel:be tgk:tg snd:sd guj:gu amh:am yid:yi lao:lo uzb:uz fao:fo hat:ht pus:ps tuk:tk nno:nn
    mlt:mt san:sa ltz:lb mya:my bur:my bod:bo tib:bo tgl:tl mlg:mg asm:as tat:tt lin:ln hau:ha bak:ba jav:jw
    jv:jw sun:su iw:he in:id ji:yi
    """.split()
)
AUTO = ("auto", "detect", "")  # what clients send for "detect it"


def language_code(value: object) -> str | None:
    """'de', 'German', 'de-DE', 'deu', 'ger' -> 'de'; None, '' or 'auto' -> None (detect)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise PydanticCustomError("unsupported_language", "a language is a string such as 'en'")
    key = value.strip().lower().replace("_", "-")
    if key in AUTO:
        return None
    for candidate in (key, key.split("-")[0]):  # a locale (en-US, zh-Hans-CN) means its language
        code = (
            candidate if candidate in LANGUAGES else TO_LANGUAGE_CODE.get(candidate) or ALPHA3.get(candidate)
        )
        if code is not None:
            return code
    raise PydanticCustomError(
        "unsupported_language",
        "unsupported language '{value}': use an ISO-639-1 code such as 'en' or 'de'",
        {"value": value[:40]},
    )

//! OME-Zarr 0.5 metadata of a recorded stream: the `ome` attributes of an image group whose
//! single dataset `0` is the `[t, y, x]` array.

use serde_json::{Value, json};

/// Path of the image array inside a stream group.
pub const IMAGE_DATASET: &str = "0";

/// The `ome` attribute object of an image group (OME-Zarr 0.5, one resolution level).
///
/// `frame_interval_s` and `pixel_size_um` go into the dataset's scale transformation; an
/// unknown pixel size is written as scale 1 without a unit on the spatial axes (pixels), an
/// unknown frame interval as scale 1 without a unit on `t` (frames).
pub fn ome_attributes(
    name: &str,
    frame_interval_s: Option<f64>,
    pixel_size_um: Option<f64>,
) -> Value {
    let mut t = json!({"name": "t", "type": "time"});
    if frame_interval_s.is_some() {
        t["unit"] = json!("second");
    }
    let space = |axis: &str| {
        let mut a = json!({"name": axis, "type": "space"});
        if pixel_size_um.is_some() {
            a["unit"] = json!("micrometer");
        }
        a
    };
    let dt = frame_interval_s.unwrap_or(1.0);
    let px = pixel_size_um.unwrap_or(1.0);
    json!({
        "version": "0.5",
        "multiscales": [{
            "name": name,
            "axes": [t, space("y"), space("x")],
            "datasets": [{
                "path": IMAGE_DATASET,
                "coordinateTransformations": [{"type": "scale", "scale": [dt, px, px]}],
            }],
        }],
    })
}

/// The `zarr.json` document of a Zarr v3 group with `attributes`.
pub fn group_document(attributes: Value) -> Value {
    json!({"zarr_format": 3, "node_type": "group", "attributes": attributes})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_scales_carry_units() {
        let a = ome_attributes("raw", Some(0.05), Some(0.65));
        assert_eq!(a["version"], "0.5");
        let ms = &a["multiscales"][0];
        assert_eq!(
            ms["axes"][0],
            json!({"name": "t", "type": "time", "unit": "second"})
        );
        assert_eq!(ms["axes"][2]["unit"], "micrometer");
        assert_eq!(ms["datasets"][0]["path"], "0");
        assert_eq!(
            ms["datasets"][0]["coordinateTransformations"][0]["scale"],
            json!([0.05, 0.65, 0.65])
        );
    }

    #[test]
    fn unknown_scales_have_no_units() {
        let a = ome_attributes("raw", None, None);
        let axes = &a["multiscales"][0]["axes"];
        assert!(axes[0].get("unit").is_none());
        assert!(axes[1].get("unit").is_none());
        assert_eq!(
            a["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"],
            json!([1.0, 1.0, 1.0])
        );
    }
}

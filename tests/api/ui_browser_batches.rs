//! Batches in a real headless Chromium (the driver and helpers of `ui_browser.rs`): upload
//! a CSV with one bad row through the page's `<input type=file>`, see the bad row named on
//! the check, start the batch, watch its page finish without a reload, download its
//! results as CSV (fetched by the page, rows checked), cancel a running job and a running
//! batch from their pages (the batch's page following it to `cancelled` by itself).
//! The new pages are photographed at 1280 and 390 pixels wide; the console must stay clean.

use fantoccini::{Client, Locator};
use serde_json::json;

use crate::helpers::{self, KEY};
use crate::ui_browser::{
    browser, click, console_errors, driver, path_of, reload_until, shot, text_of, type_into, until,
};

/// Three items for `echo`; row 3 (`chair`) gives Mode a value it does not list.
const CSV: &str = "custom_id,Text,Mode\ndesk,Walnut desk lamp,plain\n\
                   chair,Oak chair,shout\nshelf,Pine shelf,\n";

/// The body of `href` as the page fetches it, with its session.
async fn fetched(c: &Client, href: &str) -> String {
    let script = "const [href, done] = arguments; \
                  fetch(href, {credentials: 'same-origin'}).then((r) => r.text()).then(done);";
    let text = c.execute_async(script, vec![json!(href)]).await.unwrap();
    text.as_str().unwrap_or_default().to_owned()
}

/// The `href` of the first element `css` finds.
async fn href_of(c: &Client, css: &str) -> String {
    let link = c.find(Locator::Css(css)).await.unwrap();
    link.prop("href").await.unwrap().unwrap_or_default()
}

#[tokio::test]
async fn a_csv_batch_is_checked_started_followed_and_downloaded_in_a_real_browser() {
    let Some(driver) = driver().await else {
        return;
    };
    let app = helpers::spawn_app().await;
    let base = app.base.clone();
    let c = browser(&driver).await;
    c.set_window_size(1280, 900).await.unwrap();
    let file = std::env::temp_dir().join(format!("scriptorium-ui-{}.csv", std::process::id()));
    std::fs::write(&file, CSV).unwrap();

    c.goto(&format!("{base}/ui/login")).await.unwrap();
    type_into(&c, "input[name=key]", KEY).await;
    click(&c, "main form button[type=submit]").await;
    until(&c, "the overview", |c| async move {
        path_of(&c).await == "/ui/"
    })
    .await;

    // From the application's page to the upload form, a file chosen, its check.
    c.goto(&format!("{base}/ui/applications/echo"))
        .await
        .unwrap();
    click(&c, "a[href='/ui/batches/new?application=echo']").await;
    until(&c, "the upload form", |c| async move {
        path_of(&c).await == "/ui/batches/new"
    })
    .await;
    shot(&c, 1280, "batch-new").await;
    let chooser = c.find(Locator::Css("input[type=file]")).await.unwrap();
    chooser.send_keys(file.to_str().unwrap()).await.unwrap();
    click(&c, "#batch-upload button[type=submit]").await;
    until(&c, "the check", |c| async move {
        c.find(Locator::Css("#bad-rows")).await.is_ok()
    })
    .await;
    let check_url = c.current_url().await.unwrap();
    let bad = text_of(&c, "#bad-rows tbody").await;
    let bad = bad.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(bad.contains("3 chair Mode"), "row, item, column: {bad}");
    assert!(bad.contains("shout"), "{bad}");
    assert_eq!(text_of(&c, "#check-good").await, "2");
    shot(&c, 1280, "batch-check").await;

    // Started, followed on its page without a reload, its results downloaded.
    click(&c, "#start button[type=submit]").await;
    until(&c, "the batch's page", |c| async move {
        let path = path_of(&c).await;
        path.starts_with("/ui/batches/") && path != "/ui/batches/new"
    })
    .await;
    let batch_url = c.current_url().await.unwrap();
    until(
        &c,
        "the batch finished, by the page's own refresh",
        |c| async move { text_of(&c, "#batch-status").await == "completed" },
    )
    .await;
    assert_eq!(text_of(&c, "#count-failed").await, "1");
    assert!(text_of(&c, "#failures").await.contains("chair"));
    shot(&c, 1280, "batch-finished").await;
    let href = href_of(&c, "a[href$='format=csv']").await;
    let body = fetched(&c, &href).await;
    let mut rows = csv::Reader::from_reader(body.as_bytes());
    let mut got: Vec<(String, String)> = rows
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[3].to_owned(), r[4].to_owned())
        })
        .collect();
    got.sort();
    let want = [
        ("chair", "failed"),
        ("desk", "completed"),
        ("shelf", "completed"),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want, "{body}");

    // A running job, cancelled from its page.
    let job = app
        .create_job("echo", &[("Text", &["long [[mock:sleep=30000]]"])])
        .await;
    let job_url = format!("{base}/ui/jobs/{}", job["id"].as_str().unwrap());
    c.goto(&job_url).await.unwrap();
    shot(&c, 1280, "job-running").await;
    click(&c, "form[action$='/cancel'] button").await;
    c.accept_alert().await.unwrap();
    reload_until(&c, ".state.failed").await;
    assert_eq!(text_of(&c, ".state.failed").await, "cancelled");
    shot(&c, 1280, "job-cancelled").await;

    // A running batch, cancelled from its page; its page follows it to the end.
    let slow = |name: &str| {
        json!({"custom_id": name, "inputs": [{"id": "Text",
        "value": [format!("{name} [[mock:sleep=30000]]")]}]})
    };
    let running: serde_json::Value = app
        .create_batch("echo", json!({"items": [slow("a"), slow("b")]}))
        .await
        .json()
        .await
        .unwrap();
    let running_url = format!("{base}/ui/batches/{}", running["id"].as_str().unwrap());
    c.goto(&running_url).await.unwrap();
    assert_eq!(text_of(&c, "#batch-status").await, "in progress");
    shot(&c, 1280, "batch-running").await;
    c.set_window_size(390, 900).await.unwrap();
    shot(&c, 390, "batch-running").await;
    c.set_window_size(1280, 900).await.unwrap();
    click(&c, "form[action$='/cancel'] button").await;
    c.accept_alert().await.unwrap();
    until(
        &c,
        "the batch cancelled, by the page's own refresh",
        |c| async move { text_of(&c, "#batch-status").await == "cancelled" },
    )
    .await;
    // The refresh that shows the end shows it whole: both items cancelled.
    assert_eq!(text_of(&c, "#count-cancelled").await, "2");
    shot(&c, 1280, "batch-cancelled").await;

    // The new pages at a phone's width.
    c.set_window_size(390, 900).await.unwrap();
    for (name, url) in [
        ("batch-new", format!("{base}/ui/batches/new")),
        ("batch-check", check_url.to_string()),
        ("batch-finished", batch_url.to_string()),
        ("job-cancelled", job_url),
    ] {
        c.goto(&url).await.unwrap();
        c.find(Locator::Css("nav")).await.unwrap();
        shot(&c, 390, name).await;
    }

    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "the browser's console: {errors:#?}");
    let _ = std::fs::remove_file(&file);
    c.close().await.unwrap();
}
